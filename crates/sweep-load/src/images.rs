//! Images sent with prompts: synthetic PNGs made here (`workload.images`), and a dataset's
//! image files, both as base64 `data:` URLs in OpenAI `image_url` parts.
//!
//! The PNGs are seeded noise, written with stored (uncompressed) deflate blocks: servers decode
//! them like any PNG, their size is exactly predictable (width × height × 3 bytes plus a few
//! hundred), and making one costs a pass over its bytes, not a compressor.

use std::sync::Arc;

use super::rng::Rng;

/// `count` synthetic images of `width` × `height` per request, different for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synthetic {
    pub count: u32,
    pub width: u32,
    pub height: u32,
}

impl Synthetic {
    /// Request `stream`'s images as `data:image/png;base64,…` URLs.
    pub fn urls(&self, seed: u64, stream: u64) -> Vec<Arc<str>> {
        (0..u64::from(self.count))
            .map(|i| {
                let mut rng = Rng::for_stream(seed ^ 0x1a9e, stream << 8 | i);
                Arc::from(data_url("image/png", &png(self.width, self.height, &mut rng)))
            })
            .collect()
    }
}

/// A `data:` URL of `bytes`.
pub fn data_url(mime: &str, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 32);
    out.push_str("data:");
    out.push_str(mime);
    out.push_str(";base64,");
    base64(bytes, &mut out);
    out
}

/// An RGB PNG of seeded noise.
pub fn png(width: u32, height: u32, rng: &mut Rng) -> Vec<u8> {
    let (width, height) = (width.max(1), height.max(1));
    let row = 1 + width as usize * 3;
    // Each row: a filter byte (0, none), then its pixels.
    let mut raw = vec![0u8; row * height as usize];
    for line in raw.chunks_mut(row) {
        for pixels in line[1..].chunks_mut(8) {
            pixels.copy_from_slice(&rng.next_u64().to_le_bytes()[..pixels.len()]);
        }
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::with_capacity(13);
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter set, no interlace
    chunk(&mut out, b"IHDR", &header);
    chunk(&mut out, b"IDAT", &zlib_stored(&raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A zlib stream of stored deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 65_535 * 5 + 16);
    out.extend_from_slice(&[0x78, 0x01]);
    let mut blocks = data.chunks(65_535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(block) = blocks.next() {
        out.push(u8::from(blocks.peek().is_none()));
        let len = block.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u32::from(byte);
            b += a;
        }
        a %= 65_521;
        b %= 65_521;
    }
    out.extend_from_slice(&(b << 16 | a).to_be_bytes());
    out
}

fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Standard base64 with padding, appended to `out`.
pub fn base64(bytes: &[u8], out: &mut String) {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode_string(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = String::new();
            base64(plain.as_bytes(), &mut out);
            assert_eq!(out, encoded);
        }
    }

    #[test]
    fn checksums_match_known_values() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        // zlib's adler32 of "Wikipedia" is 0x11e60398.
        let z = zlib_stored(b"Wikipedia");
        assert_eq!(&z[z.len() - 4..], &0x11e6_0398u32.to_be_bytes());
    }

    fn be(bytes: &[u8]) -> u32 {
        u32::from_be_bytes(bytes.try_into().expect("4 bytes"))
    }

    #[test]
    fn a_png_has_its_size_and_valid_chunks() {
        let bytes = png(70, 300, &mut Rng::new(1));
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        assert_eq!(be(&bytes[16..20]), 70);
        assert_eq!(be(&bytes[20..24]), 300);
        // raw = 300 rows × (1 + 210) bytes, in one stored block plus framing.
        let raw: usize = 300 * 211;
        let idat = 2 + raw.div_ceil(65_535) * 5 + raw + 4;
        assert_eq!(bytes.len(), 8 + 25 + (12 + idat) + 12);
        // Every chunk's CRC checks out.
        let mut at = 8;
        while at < bytes.len() {
            let len = be(&bytes[at..at + 4]) as usize;
            let crc = be(&bytes[at + 8 + len..at + 12 + len]);
            assert_eq!(crc32(&bytes[at + 4..at + 8 + len]), crc);
            at += 12 + len;
        }
        assert_eq!(at, bytes.len());
    }

    #[test]
    fn each_request_gets_its_own_images() {
        let images = Synthetic { count: 2, width: 4, height: 4 };
        let a = images.urls(1, 0);
        assert_eq!(a.len(), 2);
        assert!(a[0].starts_with("data:image/png;base64,iVBORw0KGgo"), "{}", a[0]);
        assert_ne!(a[0], a[1]);
        assert_ne!(a, images.urls(1, 1));
        assert_eq!(a, images.urls(1, 0));
    }
}
