//! Fuzz target: a raw inbound alert e-mail through `datto::mail::parse`, as the SES
//! Lambda and `POST /local/mail` do.
#![no_main]

use deskbridge::datto::mail::{parse, sender_matches, uid_in_subject};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|raw: &[u8]| {
    let Ok(mail) = parse(raw) else { return };
    // The uid is exactly what the subject carries.
    assert_eq!(mail.uid, uid_in_subject(&mail.subject));
    let _ = sender_matches("noreply@centrastage.net", mail.from_address.as_deref());
});
