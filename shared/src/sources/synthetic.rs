//! Deterministic synthetic events of about 1.1 KB as JSON (properties ~540 B, person_properties ~180 B), for
//! the sample-data command, the tests and the benchmark. The same seed always gives the same events.

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;

use crate::event::EventRow;

const EVENTS: [&str; 6] = ["$pageview", "$autocapture", "$identify", "signed_up", "$pageleave", "purchase"];
const BROWSERS: [&str; 4] = ["Chrome", "Firefox", "Safari", "Edge"];

/// A small, fast, deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct SyntheticEvents {
    state: u64,
    team_id: i64,
}

impl SyntheticEvents {
    pub fn new(seed: u64, team_id: i64) -> Self {
        SyntheticEvents { state: seed, team_id }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uuid(&mut self) -> String {
        let v = ((self.next_u64() as u128) << 64) | self.next_u64() as u128;
        uuid::Builder::from_random_bytes(v.to_le_bytes()).into_uuid().to_string()
    }

    /// The next event, landed (`_inserted_at`) at `inserted_at`.
    pub fn event(&mut self, inserted_at: DateTime<Utc>) -> EventRow {
        let r = self.next_u64();
        let event = EVENTS[(r % EVENTS.len() as u64) as usize];
        let user = r % 5000;
        let browser = BROWSERS[((r >> 8) % 4) as usize];
        let inserted = inserted_at.timestamp_micros();
        let timestamp = inserted - ((r >> 16) % 60_000_000) as i64;
        let properties = format!(
            concat!(
                r#"{{"$current_url":"https://app.example.com/project/{p}/insights/{i}?tab=trends&interval=day","#,
                r#""$host":"app.example.com","$pathname":"/project/{p}/insights/{i}","$browser":"{b}","#,
                r#""$browser_version":{bv},"$os":"Mac OS X","$os_version":"14.{ov}.0","$device_type":"Desktop","#,
                r#""$screen_height":1080,"$screen_width":1920,"$viewport_height":{vh},"$viewport_width":1720,"#,
                r#""$lib":"web","$lib_version":"1.{lv}.3","$insert_id":"{ins:016x}","$time":{t}.{ms:03},"#,
                r#""$session_id":"{sess:016x}","$window_id":"{win:08x}","plan":"{plan}","items":{items},"#,
                r#""utm_campaign":"launch-{ov}"}}"#
            ),
            p = r % 97,
            i = (r >> 20) % 100_000,
            b = browser,
            bv = 100 + (r >> 4) % 30,
            ov = (r >> 12) % 7,
            vh = 800 + (r >> 24) % 200,
            lv = (r >> 28) % 150,
            ins = r,
            t = inserted / 1_000_000,
            ms = (inserted / 1000) % 1000,
            sess = self.next_u64(),
            win = r >> 32,
            plan = if r.is_multiple_of(3) { "scale" } else { "free" },
            items = (r >> 36) % 12,
        );
        let person_properties = format!(
            r#"{{"email":"user{user}@example.com","name":"User {user}","plan":"{}","$initial_browser":"{browser}","created_via":"signup"}}"#,
            if user.is_multiple_of(3) { "scale" } else { "free" },
        );
        EventRow {
            team_id: self.team_id,
            uuid: self.uuid(),
            event: event.to_string(),
            distinct_id: format!("user-{user:05}"),
            person_id: Some(format!("0190a1b2-0000-7000-8000-{user:012x}")),
            properties: Some(RawValue::from_string(properties).expect("valid JSON")),
            person_properties: Some(RawValue::from_string(person_properties).expect("valid JSON")),
            elements_chain: Some(if event == "$autocapture" { "button.btn:nth-child=1".into() } else { String::new() }),
            timestamp,
            created_at: Some(inserted - 1_000),
            inserted_at: inserted,
        }
    }

    /// `count` events landed evenly over `[start, start + span)`.
    pub fn events_between(&mut self, start: DateTime<Utc>, span: chrono::Duration, count: usize) -> Vec<EventRow> {
        let step = span.num_microseconds().unwrap_or(0) / count.max(1) as i64;
        (0..count).map(|i| self.event(start + chrono::Duration::microseconds(step * i as i64))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_deterministic_and_about_a_kilobyte() {
        let t = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap().with_timezone(&Utc);
        let a = SyntheticEvents::new(1, 2).events_between(t, chrono::Duration::hours(1), 100);
        let b = SyntheticEvents::new(1, 2).events_between(t, chrono::Duration::hours(1), 100);
        assert_eq!(a, b);
        let json: usize = a.iter().map(|e| serde_json::to_string(&e.as_export_json()).unwrap().len()).sum();
        let avg = json / a.len();
        assert!((900..1300).contains(&avg), "average JSON size {avg}");
        let props = a[0].properties.as_ref().unwrap().get().len();
        assert!((450..650).contains(&props), "properties {props}");
        assert!(uuid::Uuid::parse_str(&a[0].uuid).is_ok());
    }
}
