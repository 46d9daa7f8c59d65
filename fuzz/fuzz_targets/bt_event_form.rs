//! Fuzz target: a BeyondTrust outbound-event body through `OutboundEvent::parse_form`, as
//! `POST /beyondtrust/events/{token}` does.
#![no_main]

use deskbridge::beyondtrust::OutboundEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let Ok(event) = OutboundEvent::parse_form(body) else { return };
    // A session end always carries its lsid: session import depends on it.
    if event.is_session_end() {
        assert!(event.lsid.is_some(), "session end without lsid");
    }
    let _ = event.dedupe_key();
});
