pub fn x(){}
pub mod dev_store;
