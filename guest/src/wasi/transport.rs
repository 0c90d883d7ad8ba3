//! The HTTP transport over `wasi:http/outgoing-handler`.
//!
//! Requests are started as the scheduler asks; one `poll` loop drives every
//! response future and body stream together with a monotonic-clock timer for
//! the nearest deadline (or the scheduler's next retry), and hands back each
//! exchange as soon as it finishes. The timeouts are also passed to the host
//! as request options, but the guest enforces them itself: a host that
//! ignores the options (or a backend that trickles bytes) cannot hold a call
//! past its deadline. Bodies are read up to the size cap and no further.

use crate::prelude::*;
use super::wasi::clocks::monotonic_clock;
use super::wasi::http::outgoing_handler;
use super::wasi::http::types::{
    ErrorCode, FutureIncomingResponse, IncomingBody, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use super::wasi::io::poll;
use super::wasi::io::streams::{InputStream, StreamError};
use crate::engine::{Outbound, Ticket, Transport};
use crate::error::sanitize_reason;
use crate::http::{self, HttpResponse, TransportError};

const NS_PER_MS: u64 = 1_000_000;
const READ_CHUNK: u64 = 64 * 1024;

/// `wasi:http` transport: the exchanges of one call, driven together.
#[derive(Default)]
pub struct WasiTransport {
    next_ticket: u64,
    flights: Vec<(Ticket, InFlight)>,
}

/// A response being read. Field order is drop order: the stream is a child
/// of the body, which is a child of the response.
struct Reading {
    stream: InputStream,
    _body: IncomingBody,
    _response: IncomingResponse,
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    bytes: Vec<u8>,
}

enum Exchange {
    Waiting(FutureIncomingResponse),
    Reading(Reading),
    Done(Result<HttpResponse, TransportError>),
}

struct InFlight {
    exchange: Exchange,
    deadline_ns: u64,
    max_body_bytes: usize,
}

impl Transport for WasiTransport {
    fn start(&mut self, outbound: Outbound) -> Ticket {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        let now = monotonic_clock::now();
        self.flights.push((
            ticket,
            InFlight {
                exchange: start_request(&outbound),
                deadline_ns: now.saturating_add(outbound.timeout_ms.saturating_mul(NS_PER_MS)),
                max_body_bytes: outbound.max_body_bytes,
            },
        ));
        ticket
    }

    fn wait(&mut self, until_ms: Option<u64>) -> Vec<(Ticket, Result<HttpResponse, TransportError>)> {
        let until_ns = until_ms.map(|ms| ms.saturating_mul(NS_PER_MS));
        loop {
            let now = monotonic_clock::now();
            for (_, flight) in self.flights.iter_mut() {
                advance(flight, now);
            }
            let finished = self.take_finished();
            if !finished.is_empty() || self.flights.is_empty() || until_ns.is_some_and(|u| now >= u) {
                return finished;
            }
            let nearest = self.flights.iter().map(|(_, f)| f.deadline_ns).chain(until_ns).min().unwrap_or(now);
            // Pollables are children of the futures/streams: they are dropped
            // at the end of this block, before `advance` may drop a parent.
            let timer = monotonic_clock::subscribe_instant(nearest);
            let mut pollables = vec![timer];
            for (_, flight) in &self.flights {
                match &flight.exchange {
                    Exchange::Waiting(future) => pollables.push(future.subscribe()),
                    Exchange::Reading(reading) => pollables.push(reading.stream.subscribe()),
                    Exchange::Done(_) => {}
                }
            }
            let refs: Vec<&poll::Pollable> = pollables.iter().collect();
            poll::poll(&refs);
        }
    }
}

impl WasiTransport {
    fn take_finished(&mut self) -> Vec<(Ticket, Result<HttpResponse, TransportError>)> {
        let mut finished = Vec::new();
        let mut i = 0;
        while i < self.flights.len() {
            if matches!(self.flights[i].1.exchange, Exchange::Done(_)) {
                let (ticket, flight) = self.flights.swap_remove(i);
                if let Exchange::Done(result) = flight.exchange {
                    finished.push((ticket, result));
                }
            } else {
                i += 1;
            }
        }
        finished
    }
}

fn start_request(outbound: &Outbound) -> Exchange {
    match build(outbound).and_then(|(request, options)| send(request, options, &outbound.request.body)) {
        Ok(future) => Exchange::Waiting(future),
        Err(error) => Exchange::Done(Err(error)),
    }
}

/// Hands the request to the host, then writes its body (bodies are small:
/// a login or an AWS call) and finishes it, so the host knows it is complete.
fn send(request: OutgoingRequest, options: RequestOptions, body: &[u8]) -> Result<FutureIncomingResponse, TransportError> {
    let outgoing = request.body().map_err(|()| TransportError::Rejected("request body taken twice".into()))?;
    let future = outgoing_handler::handle(request, Some(options)).map_err(|code| map_error(&code))?;
    if !body.is_empty() {
        let stream = outgoing.write().map_err(|()| TransportError::Rejected("request body stream taken twice".into()))?;
        // `blocking-write-and-flush` takes at most 4096 bytes per call.
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|_| TransportError::Connect("the request body could not be written".into()))?;
        }
        drop(stream);
    }
    OutgoingBody::finish(outgoing, None).map_err(|code| map_error(&code))?;
    Ok(future)
}

fn build(outbound: &Outbound) -> Result<(OutgoingRequest, RequestOptions), TransportError> {
    let r = &outbound.request;
    let invalid = |what: &str| TransportError::Rejected(format!("invalid request {what}"));
    let headers = super::wasi::http::types::Fields::from_list(&r.headers).map_err(|_| invalid("headers"))?;
    // Every body we send is whole in memory: say its length, so the host frames it with
    // `Content-Length` instead of chunking it (many proxies and simple servers refuse chunked
    // requests; AWS SDKs always send a length). A POST without a body says 0.
    if !r.body.is_empty() || matches!(r.method, http::Method::Post | http::Method::Put) {
        headers
            .append("content-length", r.body.len().to_string().as_bytes())
            .map_err(|_| invalid("content-length"))?;
    }
    let request = OutgoingRequest::new(headers);
    request.set_method(&match r.method {
        http::Method::Get => Method::Get,
        http::Method::Post => Method::Post,
        http::Method::Put => Method::Put,
    }).map_err(|()| invalid("method"))?;
    let scheme = match r.scheme {
        http::Scheme::Http => Scheme::Http,
        http::Scheme::Https => Scheme::Https,
    };
    request.set_scheme(Some(&scheme)).map_err(|()| invalid("scheme"))?;
    request.set_authority(Some(&r.authority)).map_err(|()| invalid("authority"))?;
    request.set_path_with_query(Some(&r.path_and_query)).map_err(|()| invalid("path"))?;
    let options = RequestOptions::new();
    let timeout = Some(outbound.timeout_ms.saturating_mul(NS_PER_MS));
    // A host may not support every option; the guest enforces them anyway.
    let _ = options.set_connect_timeout(timeout);
    let _ = options.set_first_byte_timeout(timeout);
    let _ = options.set_between_bytes_timeout(timeout);
    Ok((request, options))
}

/// Moves one exchange as far as it can go without blocking.
fn advance(flight: &mut InFlight, now: u64) {
    let exchange = core::mem::replace(&mut flight.exchange, Exchange::Done(Err(TransportError::Timeout)));
    flight.exchange = match exchange {
        Exchange::Waiting(future) => match future.get() {
            None if now >= flight.deadline_ns => Exchange::Done(Err(TransportError::Timeout)),
            None => Exchange::Waiting(future),
            Some(Err(())) => Exchange::Done(Err(TransportError::Protocol("response taken twice".into()))),
            Some(Ok(Err(code))) => Exchange::Done(Err(map_error(&code))),
            Some(Ok(Ok(response))) => start_reading(response, flight.max_body_bytes),
        },
        Exchange::Reading(reading) => read_available(reading, flight.max_body_bytes, now >= flight.deadline_ns),
        done @ Exchange::Done(_) => done,
    };
    // A response that became readable may already have its body.
    if let Exchange::Reading(_) = flight.exchange {
        let exchange = core::mem::replace(&mut flight.exchange, Exchange::Done(Err(TransportError::Timeout)));
        if let Exchange::Reading(reading) = exchange {
            flight.exchange = read_available(reading, flight.max_body_bytes, now >= flight.deadline_ns);
        }
    }
}

fn start_reading(response: IncomingResponse, max_body_bytes: usize) -> Exchange {
    let status = response.status();
    let headers = response.headers().entries();
    let declared = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| core::str::from_utf8(v).ok()?.trim().parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body_bytes as u64) {
        return Exchange::Done(Err(TransportError::BodyTooLarge { limit: max_body_bytes }));
    }
    let Ok(body) = response.consume() else {
        return Exchange::Done(Err(TransportError::Protocol("response body already consumed".into())));
    };
    let Ok(stream) = body.stream() else {
        return Exchange::Done(Err(TransportError::Protocol("response body stream unavailable".into())));
    };
    Exchange::Reading(Reading { stream, _body: body, _response: response, status, headers, bytes: Vec::new() })
}

/// Reads whatever is available now; finishes on end of stream, on the cap,
/// or (if `expired`) with a timeout.
fn read_available(mut reading: Reading, max_body_bytes: usize, expired: bool) -> Exchange {
    loop {
        // Ask for one byte more than the cap allows, to notice an overflow.
        let room = (max_body_bytes + 1).saturating_sub(reading.bytes.len()) as u64;
        match reading.stream.read(room.min(READ_CHUNK)) {
            Ok(chunk) if chunk.is_empty() => {
                return if expired { Exchange::Done(Err(TransportError::Timeout)) } else { Exchange::Reading(reading) };
            }
            Ok(chunk) => {
                // Fallible: a body that does not fit in this instance's memory is the
                // backend's problem to report, not a reason to trap.
                // Doubling first (linear total copying); the exact size when
                // doubling no longer fits.
                let grown = reading.bytes.try_reserve(chunk.len()).or_else(|_| reading.bytes.try_reserve_exact(chunk.len()));
                if grown.is_err() {
                    return Exchange::Done(Err(TransportError::OutOfMemory { bytes: reading.bytes.len() + chunk.len() }));
                }
                reading.bytes.extend_from_slice(&chunk);
                if reading.bytes.len() > max_body_bytes {
                    return Exchange::Done(Err(TransportError::BodyTooLarge { limit: max_body_bytes }));
                }
            }
            Err(StreamError::Closed) => {
                let Reading { status, headers, bytes, .. } = reading;
                return Exchange::Done(Ok(HttpResponse { status, headers, body: bytes }));
            }
            Err(StreamError::LastOperationFailed(error)) => {
                return Exchange::Done(Err(TransportError::Connect(sanitize_reason(&error.to_debug_string()))));
            }
        }
    }
}

fn map_error(code: &ErrorCode) -> TransportError {
    match code {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => TransportError::Timeout,
        ErrorCode::ConnectionRefused
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::DnsError(_) => TransportError::Connect(sanitize_reason(&format!("{code:?}"))),
        // The host will refuse the same request again: not worth a retry, and no sign
        // that the backend is unhealthy.
        ErrorCode::HttpRequestDenied
        | ErrorCode::HttpRequestUriInvalid
        | ErrorCode::HttpRequestMethodInvalid
        | ErrorCode::TlsCertificateError
        | ErrorCode::DestinationIpProhibited => TransportError::Rejected(sanitize_reason(&format!("{code:?}"))),
        other => TransportError::Protocol(sanitize_reason(&format!("{other:?}"))),
    }
}
