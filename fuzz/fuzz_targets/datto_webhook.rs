//! Fuzz target: a Datto webhook body through `parse_body` (with its repair of unescaped
//! substitutions) and `interpret`, as `POST /datto/webhook` does after authentication.
#![no_main]

use chrono::{TimeZone, Utc};
use deskbridge::datto::webhook::{interpret, parse_body, repair, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(text) = std::str::from_utf8(body) {
        // Valid JSON is never changed by the repair.
        if serde_json::from_str::<serde_json::Value>(text).is_ok() {
            assert_eq!(repair(text), text, "repair changed valid JSON");
        }
    }
    let Ok(parsed) = parse_body(body) else { return };
    if let Parsed::Strict(v) = &parsed {
        assert_eq!(Some(v), serde_json::from_slice::<serde_json::Value>(body).ok().as_ref());
    }
    let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let _ = interpret(parsed.value(), at);
    let _ = deskbridge::datto::webhook::state_of(parsed.value());
});
