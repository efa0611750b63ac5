//! The checksums the tools store for a migration, computed the way each
//! tool computes them.

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha384};

/// sqlx: SHA-384 of the file's text.
pub fn sqlx_sha384(text: &str) -> Vec<u8> {
    Sha384::digest(text.as_bytes()).to_vec()
}

/// Flyway: CRC-32 over the file's lines without their line ends (`\n`,
/// `\r\n` or `\r`), a byte-order mark dropped from the first; stored as a
/// signed 32-bit integer.
pub fn flyway_crc32(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = crc32fast::Hasher::new();
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(['\n', '\r']).unwrap_or(rest.len());
        crc.update(&rest.as_bytes()[..end]);
        rest = &rest[end..];
        if rest.starts_with("\r\n") {
            rest = &rest[2..];
        } else if !rest.is_empty() {
            rest = &rest[1..];
        }
    }
    crc.finalize() as i32
}

/// refinery: SipHash-1-3 (keys 0, 0) of the name, the version and the SQL,
/// hashed as Rust hashes a `String`, an `i32` and a `&str`.
pub fn refinery_checksum(name: &str, version: i32, sql: &str) -> u64 {
    let mut h = siphasher::sip::SipHasher13::new();
    name.hash(&mut h);
    version.hash(&mut h);
    sql.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flyway_checksum_ignores_line_ends_and_the_bom() {
        let lf = flyway_crc32("create table a (id int);\ninsert into a values (1);\n");
        assert_eq!(
            lf,
            flyway_crc32("create table a (id int);\r\ninsert into a values (1);")
        );
        assert_eq!(
            lf,
            flyway_crc32("\u{feff}create table a (id int);\rinsert into a values (1);")
        );
        assert_ne!(
            lf,
            flyway_crc32("create table a (id int);\ninsert into a values (2);")
        );
        // The CRC-32 of the concatenated lines.
        let mut c = crc32fast::Hasher::new();
        c.update(b"create table a (id int);insert into a values (1);");
        assert_eq!(lf, c.finalize() as i32);
    }

    #[test]
    fn sqlx_checksum_is_sha384_of_the_text() {
        assert_eq!(
            hex::encode(sqlx_sha384("")),
            "38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b"
        );
    }
}
