//! The on-disk form of window pages. Pages are most of the store and reading them is most of a
//! restart (a month of 10,000 SLOs is ~260k pages), so they are packed: consecutive ring slots
//! hold cumulative counts that differ by one bucket's increase, a whole number for counters of
//! events, which fits a byte or two instead of an 8-byte float.
//!
//! Schema 2 layout: a flags byte (bit 0: minute detail follows), the slot count as a varint,
//! then each counter's column of slot values, then 8 bytes of detail a slot. A column starts
//! with the first value's raw bits; each next value is the zigzag varint of its difference from
//! the one before, shifted left one bit, when that difference reproduces it exactly, or a lone
//! 1 bit followed by its raw 8 bytes (fractional counters, huge jumps). Round trips are exact.
//! Schema 1 pages were raw little-endian f64 pairs, 16 bytes a slot, without detail.

use crate::engine::{Detail, Page};

const HAS_DETAIL: u8 = 1;

/// Differences beyond this are stored raw: below it every integer is an exact f64, and the
/// zigzag varint, shifted, still fits 64 bits.
const MAX_EXACT_STEP: f64 = (1u64 << 52) as f64;

/// Why a stored page could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PageError {
    #[error("page ends early")]
    Truncated,
    #[error("{0} bytes left over after the page")]
    Trailing(usize),
    #[error("unknown page flags {0:#x}")]
    Flags(u8),
    #[error("a name is not UTF-8")]
    Utf8,
    #[error("{0} bytes is not whole schema-1 slots")]
    Legacy(usize),
}

pub fn encode(page: &Page) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + page.slots.len() * 4 + page.detail.len() * 8);
    out.push(if page.detail.is_empty() { 0 } else { HAS_DETAIL });
    put_varint(&mut out, page.slots.len() as u64);
    for column in 0..2 {
        let mut previous: Option<f64> = None;
        for slot in &page.slots {
            put_value(&mut out, previous, slot[column]);
            previous = Some(slot[column]);
        }
    }
    out.extend(page.detail.iter().flatten().flatten());
    out
}

fn put_value(out: &mut Vec<u8>, previous: Option<f64>, value: f64) {
    if let Some(previous) = previous {
        let step = value - previous;
        if step.fract() == 0.0
            && step.abs() < MAX_EXACT_STEP
            && previous + step == value
            && value.to_bits() != (-0.0f64).to_bits()
        {
            let step = step as i64;
            put_varint(out, (((step << 1) ^ (step >> 63)) as u64) << 1);
            return;
        }
        put_varint(out, 1);
    }
    out.extend_from_slice(&value.to_le_bytes());
}

/// Reads a schema-2 page; `level` and `index` come from its key.
pub fn decode(level: usize, index: usize, bytes: &[u8]) -> Result<Page, PageError> {
    let mut input = Input(bytes);
    let flags = input.byte()?;
    if flags & !HAS_DETAIL != 0 {
        return Err(PageError::Flags(flags));
    }
    let n = usize::try_from(input.varint()?).map_err(|_| PageError::Truncated)?;
    if n > bytes.len() {
        return Err(PageError::Truncated);
    }
    let mut slots = vec![[0.0; 2]; n];
    for column in 0..2 {
        let mut previous: Option<f64> = None;
        for slot in &mut slots {
            let value = match previous {
                None => input.f64()?,
                Some(previous) => match input.varint()? {
                    1 => input.f64()?,
                    shifted => {
                        let zigzag = shifted >> 1;
                        previous + ((zigzag >> 1) as i64 ^ -((zigzag & 1) as i64)) as f64
                    }
                },
            };
            slot[column] = value;
            previous = Some(value);
        }
    }
    let detail = if flags & HAS_DETAIL != 0 {
        (0..n).map(|_| input.detail()).collect::<Result<Vec<Detail>, _>>()?
    } else {
        Vec::new()
    };
    match input.0.len() {
        0 => Ok(Page { level, index, slots, detail }),
        left => Err(PageError::Trailing(left)),
    }
}

/// Reads a schema-1 page (raw f64 pairs), for the migration to schema 2.
pub fn decode_legacy(level: usize, index: usize, bytes: &[u8]) -> Result<Page, PageError> {
    if !bytes.len().is_multiple_of(16) {
        return Err(PageError::Legacy(bytes.len()));
    }
    let f = |b: &[u8]| f64::from_le_bytes(b.try_into().expect("8-byte chunk"));
    let slots = bytes.chunks_exact(16).map(|c| [f(&c[..8]), f(&c[8..])]).collect();
    Ok(Page { level, index, slots, detail: Vec::new() })
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) struct Input<'a>(pub &'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], PageError> {
        if self.0.len() < n {
            return Err(PageError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(super) fn byte(&mut self) -> Result<u8, PageError> {
        Ok(self.take(1)?[0])
    }

    fn f64(&mut self) -> Result<f64, PageError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    fn detail(&mut self) -> Result<Detail, PageError> {
        let b = self.take(8)?;
        Ok([b[..4].try_into().expect("4 bytes"), b[4..].try_into().expect("4 bytes")])
    }

    pub(super) fn u64(&mut self) -> Result<u64, PageError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    /// A varint length and that many bytes.
    pub(super) fn bytes(&mut self) -> Result<&'a [u8], PageError> {
        let n = usize::try_from(self.varint()?).map_err(|_| PageError::Truncated)?;
        self.take(n)
    }

    pub(super) fn str(&mut self) -> Result<&'a str, PageError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| PageError::Utf8)
    }

    pub(super) fn varint(&mut self) -> Result<u64, PageError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(PageError::Truncated)
    }
}
