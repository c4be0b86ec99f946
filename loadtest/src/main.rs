//! loadtest: the refresh-storm and benchmark client (work in progress).
fn main() {}
