//! New DICOM UIDs: `2.25.` followed by a UUID written as one unsigned decimal number (PS3.5 B.2, ITU-T
//! X.667 / ISO/IEC 9834-8). The 2.25 arc needs no registered organisation root, and a random (version 4)
//! UUID carries 122 random bits, so two edge boxes that never talk to each other do not collide.
//! Every new Series and SOP Instance UID is made here; nothing about the patient or the source goes into one.

use uuid::Uuid;

/// The UUID-derived UID root (PS3.5 B.2).
const UUID_ROOT: &str = "2.25";

/// A UID longer than this is invalid (PS3.5 9.1: at most 64 characters). `2.25.` plus the 39 digits of
/// the largest u128 is 44, so this only guards the code against later edits.
pub const MAX_UID_LEN: usize = 64;

/// A fresh random UID under 2.25.
pub fn new_uid() -> String {
    from_uuid(Uuid::new_v4())
}

/// A UID that is the same every time for the same bundle: the Device Observer UID of the SR (TID 1004)
/// names the algorithm, so every result of one bundle carries one UID. The first 16 bytes of the bundle's
/// manifest sha256 (hex) become a version 8 ("custom") UUID, so the value is still a valid UUID.
pub fn bundle_uid(manifest_sha256_hex: &str) -> String {
    let mut bytes = [0u8; 16];
    let digits: Vec<u8> = manifest_sha256_hex
        .bytes()
        .filter_map(|c| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok()))
        .collect();
    for (slot, pair) in bytes.iter_mut().zip(digits.chunks(2)) {
        *slot = pair.iter().fold(0u8, |acc, d| (acc << 4) | d);
    }
    from_uuid(Uuid::new_v8(bytes))
}

fn from_uuid(uuid: Uuid) -> String {
    // PS3.5 B.2: the UUID as an integer, decimal, without leading zeros (u128's Display has none).
    format!("{UUID_ROOT}.{}", uuid.as_u128())
}

/// Whether `uid` is a syntactically valid UID (PS3.5 9.1): digits and dots, no empty component, no
/// leading zero in a multi-digit component, at most 64 characters.
pub fn is_valid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= MAX_UID_LEN
        && uid.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_uids_are_valid_and_distinct() {
        let a = new_uid();
        let b = new_uid();
        assert!(a.starts_with("2.25."), "{a}");
        assert!(is_valid(&a) && is_valid(&b), "{a} {b}");
        assert_ne!(a, b);
    }

    #[test]
    fn bundle_uid_is_stable_and_valid() {
        let sha = "3f".repeat(32);
        assert_eq!(bundle_uid(&sha), bundle_uid(&sha));
        assert!(is_valid(&bundle_uid(&sha)));
        assert_ne!(bundle_uid(&sha), bundle_uid(&"40".repeat(32)));
    }

    #[test]
    fn validity_rules() {
        assert!(is_valid("1.2.840.10008.5.1.4.1.1.88.33"));
        assert!(is_valid("2.25.0"));
        assert!(!is_valid("2.25.01"));
        assert!(!is_valid("2..25"));
        assert!(!is_valid("2.25.x"));
        assert!(!is_valid(&format!("2.25.{}", "1".repeat(70))));
    }
}
