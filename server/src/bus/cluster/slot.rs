//! Which of Redis Cluster's 16,384 hash slots a channel belongs to, computed as Redis does:
//! CRC16 (XMODEM) of the name, or of its `{hash tag}` when it has a non-empty one, modulo 16,384.
//!
//! Its own module because both halves of the cluster bus route by it: a sharded channel lives on
//! the master that owns its slot, for SSUBSCRIBE and SPUBLISH alike.

/// Slots in a Redis Cluster.
pub const SLOTS: usize = 16_384;

/// The slot of `key` (a channel name).
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key).unwrap_or(key)) & (SLOTS as u16 - 1)
}

/// The part between the first `{` and the next `}`, when it is not empty: keys sharing a tag
/// share a slot.
fn hash_tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), byte-wise through a table.
fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // From `CLUSTER KEYSLOT` of Redis 7.0 (the server tests check many more names against a
        // live cluster).
        assert_eq!(crc16(b"123456789"), 0x31C3, "the CRC16/XMODEM check value");
        assert_eq!(key_slot(b"a"), 15_495);
        assert_eq!(key_slot(b"b"), 3_300);
        assert_eq!(key_slot(b"c"), 7_365);
        assert_eq!(key_slot(b""), 0);
    }

    #[test]
    fn a_hash_tag_decides_the_slot() {
        assert_eq!(key_slot(b"x{a}y"), key_slot(b"a"));
        assert_eq!(key_slot(b"{a}{b}"), key_slot(b"a"), "only the first tag");
        assert_eq!(
            key_slot(b"x{}a"),
            crc16(b"x{}a") & 0x3FFF,
            "an empty tag is no tag"
        );
        assert_eq!(
            key_slot(b"x{a"),
            crc16(b"x{a") & 0x3FFF,
            "an open tag is no tag"
        );
    }
}
