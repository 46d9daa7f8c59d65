//! HTTP routers
