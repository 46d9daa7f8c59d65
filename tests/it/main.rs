//! The one integration-test binary: contract suites per port, HTTP scenarios, Lambda event
//! paths and the `deskbridge` binary as a child process.

mod contract;
