//! Fuzz target: a BeyondTrust `SupportSession` report answer through
//! `SupportSessionReport::from_xml` and on into domain facts, as session import does.
#![no_main]

use deskbridge::beyondtrust::SupportSessionReport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let text = String::from_utf8_lossy(body);
    for lsid in [None, Some("a3f1c9e27b5d4e08b6c2d9f4e1a7b530")] {
        if let Ok(report) = SupportSessionReport::from_xml(&text, lsid) {
            let _ = report.is_complete();
            let _ = report.to_facts();
        }
    }
});
