//! Payload masking (RFC 6455 §5.3).
//!
//! Client-to-server frames carry a 4-byte key; every payload byte `i` is XORed with
//! `key[i % 4]`. Unmasking is the one per-byte pass the server must make over every
//! received payload, so it is done eight bytes at a time on a word built from the key,
//! which the compiler turns into SIMD on targets that have it.

/// XOR `buf` with the masking `key`, as if `buf` started at byte `offset` of the
/// payload (so a payload that arrives in pieces can be unmasked piece by piece).
///
/// Masking and unmasking are the same operation.
///
/// ```
/// use lariat_proto::mask::apply_mask;
/// // RFC 6455 §5.7: a masked "Hello".
/// let mut payload = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
/// apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
/// assert_eq!(&payload, b"Hello");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    if buf.len() < 16 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[i & 3];
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= AVX2_MIN && std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above), all that
        // `mask_avx2` requires.
        unsafe { mask_avx2(buf, key) };
        return;
    }
    mask_words(buf, key);
}

/// From this length on, a CPU with AVX2 unmasks 32 bytes at a time (a
/// default x86-64 build has SSE2 only, 16).
#[cfg(target_arch = "x86_64")]
const AVX2_MIN: usize = 256;

/// [`mask_words`] compiled for AVX2.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn mask_avx2(buf: &mut [u8], key: [u8; 4]) {
    mask_words(buf, key);
}

/// XOR `buf` (at least 16 bytes) with `key` from its first byte: 32 bytes at
/// a time, a form the compiler turns into the widest SIMD the function is
/// compiled for, then 8, then one.
#[inline(always)]
fn mask_words(buf: &mut [u8], key: [u8; 4]) {
    let mut wide = [0u8; 32];
    for (i, b) in wide.iter_mut().enumerate() {
        *b = key[i & 3];
    }
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for (b, k) in block.iter_mut().zip(wide.iter()) {
            *b ^= k;
        }
    }
    // The rest starts at a multiple of 32, so the key phase is unchanged.
    let rest = blocks.into_remainder();
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = rest.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // `chunks_exact_mut(8)` guarantees the length; the conversion cannot fail.
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        let v = u64::from_ne_bytes(bytes) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The key as seen from byte `offset` of the payload.
#[inline]
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let k = u32::from_be_bytes(key).rotate_left(((offset & 3) * 8) as u32);
    k.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(i + offset) % 4];
        }
    }

    #[test]
    fn matches_naive_at_every_length_and_offset() {
        let key = [0x12, 0x34, 0x56, 0x78];
        // Up to 100, and around the 32-byte blocks and the AVX2 threshold.
        let lens = (0..100).chain([255, 256, 257, 287, 300, 511, 1000, 1031, 65_550]);
        for len in lens {
            for offset in 0..8 {
                let src: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let mut a = src.clone();
                let mut b = src.clone();
                apply_mask(&mut a, key, offset);
                naive(&mut b, key, offset);
                assert_eq!(a, b, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let src: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
        let mut whole = src.clone();
        apply_mask(&mut whole, key, 0);
        let mut pieces = src.clone();
        let mut at = 0;
        for step in [1usize, 3, 17, 64, 5, 200, 710] {
            let end = (at + step).min(pieces.len());
            apply_mask(&mut pieces[at..end], key, at);
            at = end;
        }
        assert_eq!(at, 1000);
        assert_eq!(whole, pieces);
    }
}
