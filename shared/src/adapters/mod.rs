//! Implementations of the ports: AWS services for Lambda, embedded ones for the local
//! server. Nothing outside this module knows which adapter sits behind a port.
