//! Security headers on every answer of every router: content security policy, nosniff,
//! referrer policy, framing refusal, and HSTS when the request came over https.
//!
//! The layer overwrites whatever a handler set, so no route can loosen the policy.
//! "Over https" is judged per request: the URI's scheme, or `X-Forwarded-Proto: https`,
//! which API Gateway (and any TLS-terminating proxy in front of `deskbridge serve`) sets.
//! A client that spoofs the header on plain http gains nothing: browsers ignore HSTS
//! received over http (RFC 6797 §8.1).

use axum::extract::Request;
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// Where the web console is served; its pages load their own scripts and styles.
pub const CONSOLE_PREFIX: &str = "/console";

/// The policy of the API and intake answers (JSON): nothing may be loaded or framed.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The console's policy: scripts, styles and everything else from its own origin only
/// (no inline script or style, no eval), never framed.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Two years, subdomains included: the value the HSTS preload list asks for.
pub const HSTS: &str = "max-age=63072000; includeSubDomains";

const FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

fn over_https(req: &Request) -> bool {
    req.uri().scheme_str() == Some("https")
        || req
            .headers()
            .get(&FORWARDED_PROTO)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn is_console(path: &str) -> bool {
    path == CONSOLE_PREFIX || path.starts_with("/console/")
}

/// axum middleware (`middleware::from_fn(security::headers)`): run the request, then put
/// the security headers on whatever answer came back, errors included.
pub async fn headers(req: Request, next: Next) -> Response {
    let https = over_https(&req);
    let csp = if is_console(req.uri().path()) {
        CONSOLE_CSP
    } else {
        API_CSP
    };
    let mut resp = next.run(req).await;
    set(resp.headers_mut(), csp, https);
    resp
}

fn set(h: &mut HeaderMap, csp: &'static str, https: bool) {
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if https {
        h.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    } else {
        h.remove(STRICT_TRANSPORT_SECURITY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_policy_allows_inline_script_or_framing() {
        for csp in [API_CSP, CONSOLE_CSP] {
            assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        }
        assert!(CONSOLE_CSP.contains("script-src 'self'") && CONSOLE_CSP.contains("style-src 'self'"));
    }

    #[test]
    fn the_console_is_told_apart_by_path() {
        assert!(is_console("/console") && is_console("/console/app.js"));
        assert!(!is_console("/consoles") && !is_console("/api/console"));
    }
}
