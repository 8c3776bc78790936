//! A bounds-checked big-endian reader over borrowed bytes: every accessor returns `None` instead of
//! panicking, so parsers of hostile input are plain `?` chains.

/// Cursor over a byte slice.
#[derive(Debug, Clone, Copy)]
pub struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Rd { b }
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    pub fn rest(&self) -> &'a [u8] {
        self.b
    }
    pub fn len(&self) -> usize {
        self.b.len()
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    pub fn u8(&mut self) -> Option<u8> {
        let (&h, t) = self.b.split_first()?;
        self.b = t;
        Some(h)
    }
    pub fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
    }
    pub fn u24(&mut self) -> Option<usize> {
        let s = self.take(3)?;
        be24(s)
    }
    pub fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    pub fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
    pub fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
}

/// Big-endian 24-bit value of the first three bytes.
pub fn be24(s: &[u8]) -> Option<usize> {
    Some(((*s.first()? as usize) << 16) | ((*s.get(1)? as usize) << 8) | (*s.get(2)? as usize))
}

/// Big-endian 16-bit value at `off`.
pub fn be16_at(s: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_be_bytes([
        *s.get(off)?,
        *s.get(off.checked_add(1)?)?,
    ]))
}

/// A list of big-endian u16 values (odd trailing byte ignored).
pub fn u16_list(s: &[u8]) -> Vec<u16> {
    s.chunks_exact(2)
        .filter_map(|c| match c {
            [a, b] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        })
        .collect()
}
