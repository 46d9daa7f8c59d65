//! Port contract suites: each case is a `pub async fn` taking the port, run against every
//! adapter of that port so one failure names both the case and the adapter.
