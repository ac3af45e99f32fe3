//! Content-defined chunking: FastCDC (2020) cut points over a repository-secret
//! gear table.
//!
//! The cut algorithm is the `fastcdc` crate's; the gear table is ours: 256
//! 64-bit words drawn from a BLAKE3 stream keyed by the master key, so two
//! repositories cut the same file at different places and chunk sizes leak
//! nothing about content across repositories.

use std::io::Read;

use fastcdc::v2020::{Normalization, cut_gear, select_masks};

use crate::config::ChunkerParams;

/// Normalisation level 1, the crate's default: chunk sizes cluster near the
/// average without the dedup loss of stronger levels.
const NORMALIZATION: Normalization = Normalization::Level1;

/// A configured chunker; cheap to share between threads.
#[derive(Clone)]
pub struct Chunker {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
    min: usize,
    avg: usize,
    max: usize,
    masks: (u64, u64, u64, u64),
}

impl Chunker {
    /// A chunker with the given sizes and secret gear table.
    pub fn new(params: ChunkerParams, gear: &[u64; 256]) -> Self {
        let avg = params.avg_size as usize;
        let (mask_s, mask_l) = select_masks(avg, NORMALIZATION);
        let mut gear_ls = Box::new([0u64; 256]);
        for (ls, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *ls = g << 1;
        }
        Chunker {
            gear: Box::new(*gear),
            gear_ls,
            min: params.min_size as usize,
            avg,
            max: params.max_size as usize,
            masks: (mask_s, mask_l, mask_s << 1, mask_l << 1),
        }
    }

    /// Length of the next chunk at the start of `data`. `data` must hold at
    /// least `max_size` bytes unless it is the end of the stream.
    pub fn next_cut(&self, data: &[u8]) -> usize {
        if data.len() <= self.min {
            return data.len();
        }
        let (ms, ml, msl, mll) = self.masks;
        let (_, cut) = cut_gear(
            data,
            self.min,
            self.avg,
            self.max,
            ms,
            ml,
            msl,
            mll,
            &self.gear[..],
            &self.gear_ls[..],
        );
        cut.max(1).min(data.len())
    }

    /// Split a whole in-memory buffer into chunk lengths.
    #[cfg(test)]
    pub fn cut_all(&self, data: &[u8]) -> Vec<usize> {
        let mut lengths = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let len = self.next_cut(&data[pos..]);
            lengths.push(len);
            pos += len;
        }
        lengths
    }

    /// Stream `reader` through the chunker. Data is read into `buf` (grown to
    /// at least twice the maximum chunk size); each time it fills, `batch` is
    /// called with the buffer and the chunk ranges complete in it, so the
    /// caller can process a batch of chunks in parallel. Returns the number of
    /// bytes read.
    pub fn stream<R: Read, E>(
        &self,
        mut reader: R,
        buf: &mut Vec<u8>,
        mut batch: impl FnMut(&[u8], &[std::ops::Range<usize>]) -> Result<(), E>,
        io_err: impl Fn(std::io::Error) -> E,
    ) -> Result<u64, E> {
        let capacity = (2 * self.max).max(buf.len());
        buf.resize(capacity, 0);
        let mut start = 0;
        let mut end = 0;
        let mut eof = false;
        let mut total = 0u64;
        let mut ranges = Vec::new();
        loop {
            while !eof && end < buf.len() {
                match reader.read(&mut buf[end..]) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        end += n;
                        total += n as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(io_err(e)),
                }
            }
            ranges.clear();
            while start < end && (eof || end - start >= self.max) {
                let len = self.next_cut(&buf[start..end]);
                ranges.push(start..start + len);
                start += len;
            }
            if !ranges.is_empty() {
                batch(&buf[..end], &ranges)?;
            }
            if eof && start == end {
                return Ok(total);
            }
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Crypto, MasterKey};

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            out.extend_from_slice(&x.to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn small() -> ChunkerParams {
        ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
        }
    }

    #[test]
    fn stream_matches_whole_buffer_and_respects_bounds() {
        let crypto = Crypto::new(&MasterKey::generate(), true);
        let chunker = Chunker::new(small(), crypto.gear());
        let data = pseudo_random(1_000_000, 7);
        let whole = chunker.cut_all(&data);
        assert_eq!(whole.iter().sum::<usize>(), data.len());
        for len in &whole[..whole.len() - 1] {
            assert!((4096..=65536).contains(len), "chunk of {len} bytes");
        }
        let mut streamed = Vec::new();
        let mut buf = Vec::new();
        let total = chunker
            .stream(
                // A reader that returns odd-sized pieces.
                std::io::Cursor::new(&data).take(u64::MAX),
                &mut buf,
                |_, ranges| {
                    streamed.extend(ranges.iter().map(|r| r.len()));
                    Ok::<(), std::io::Error>(())
                },
                |e| e,
            )
            .unwrap();
        assert_eq!(total, data.len() as u64);
        assert_eq!(streamed, whole);
    }

    #[test]
    fn cut_points_are_secret_and_shift_resistant() {
        let data = pseudo_random(2_000_000, 11);
        let a = Chunker::new(small(), Crypto::new(&MasterKey::generate(), true).gear());
        let b = Chunker::new(small(), Crypto::new(&MasterKey::generate(), true).gear());
        assert_ne!(
            a.cut_all(&data),
            b.cut_all(&data),
            "different keys, different cuts"
        );
        // Inserting a byte near the start changes only the first chunks.
        let mut shifted = vec![0x42];
        shifted.extend_from_slice(&data);
        let offsets = |lengths: Vec<usize>, base: usize| {
            lengths
                .iter()
                .scan(base, |pos, len| {
                    *pos += len;
                    Some(*pos)
                })
                .collect::<std::collections::HashSet<_>>()
        };
        let before = offsets(a.cut_all(&data), 1);
        let after = offsets(a.cut_all(&shifted), 0);
        let shared = before.intersection(&after).count();
        assert!(
            shared * 10 >= before.len() * 9,
            "{shared} of {} cut points kept",
            before.len()
        );
    }

    #[test]
    fn small_input_is_one_chunk() {
        let chunker = Chunker::new(
            ChunkerParams::default(),
            Crypto::new(&MasterKey::generate(), true).gear(),
        );
        assert_eq!(chunker.cut_all(b"tiny file"), vec![9]);
        assert!(chunker.cut_all(b"").is_empty());
    }
}
