//! Fuzz target: BeyondTrust command API answers (`get_api_info`, `get_logged_in_reps`,
//! `get_support_teams`, `generate_session_key`) through their XML parsers.
#![no_main]

use deskbridge::beyondtrust::{find_logged_in_rep, ApiInfo, LoggedInRep, SessionKey, SupportTeam};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let text = String::from_utf8_lossy(body);
    if let Ok(info) = ApiInfo::from_xml(&text) {
        let _ = (info.command_full_access(), info.reporting_support(), info.problems());
    }
    if let Ok(reps) = LoggedInRep::list_from_xml(&text) {
        let _ = find_logged_in_rep(&reps, " Dana Tech ");
        for r in &reps {
            let _ = r.names();
        }
    }
    let _ = SupportTeam::list_from_xml(&text);
    if let Ok(key) = SessionKey::from_xml(&text) {
        let _ = key.invite_key("https://support.example.test");
    }
});
