//! Guest memory access: every read and write is bounds-checked against the memory, and any
//! range that does not fit fails with `fault` instead of touching the host. Values are
//! little-endian and need no alignment.

use crate::errno::{Errno, WasiResult};
use crate::types::size;

/// Most iovecs one call takes (Linux's IOV_MAX).
pub const MAX_IOVECS: u32 = 1024;
/// Most bytes one read or write call transfers; more is a short transfer, so counts fit the
/// 32-bit results and host buffers stay bounded.
pub const MAX_IO: usize = 1 << 30;

/// A guest's linear memory, borrowed for the length of one call.
pub struct GuestMemory<'a> {
    bytes: &'a mut [u8],
}

impl<'a> GuestMemory<'a> {
    /// Wraps the memory's bytes.
    pub fn new(bytes: &'a mut [u8]) -> Self {
        GuestMemory { bytes }
    }

    fn range(&self, ptr: u32, len: u32) -> WasiResult<std::ops::Range<usize>> {
        let start = ptr as usize;
        let end = start.checked_add(len as usize).ok_or(Errno::Fault)?;
        if end > self.bytes.len() {
            return Err(Errno::Fault);
        }
        Ok(start..end)
    }

    /// `len` bytes at `ptr`.
    pub fn slice(&self, ptr: u32, len: u32) -> WasiResult<&[u8]> {
        let r = self.range(ptr, len)?;
        Ok(&self.bytes[r])
    }

    /// `len` bytes at `ptr`, mutably.
    pub fn slice_mut(&mut self, ptr: u32, len: u32) -> WasiResult<&mut [u8]> {
        let r = self.range(ptr, len)?;
        Ok(&mut self.bytes[r])
    }

    /// Copies `data` to `ptr`.
    pub fn write_bytes(&mut self, ptr: u32, data: &[u8]) -> WasiResult<()> {
        let len = u32::try_from(data.len()).map_err(|_| Errno::Fault)?;
        self.slice_mut(ptr, len)?.copy_from_slice(data);
        Ok(())
    }

    fn array<const N: usize>(&self, ptr: u32) -> WasiResult<[u8; N]> {
        let s = self.slice(ptr, N as u32)?;
        Ok(s.try_into().expect("slice of N bytes"))
    }

    /// The `u8` at `ptr`.
    pub fn read_u8(&self, ptr: u32) -> WasiResult<u8> {
        Ok(self.array::<1>(ptr)?[0])
    }

    /// The `u16` at `ptr`.
    pub fn read_u16(&self, ptr: u32) -> WasiResult<u16> {
        Ok(u16::from_le_bytes(self.array(ptr)?))
    }

    /// The `u32` at `ptr`.
    pub fn read_u32(&self, ptr: u32) -> WasiResult<u32> {
        Ok(u32::from_le_bytes(self.array(ptr)?))
    }

    /// The `u64` at `ptr`.
    pub fn read_u64(&self, ptr: u32) -> WasiResult<u64> {
        Ok(u64::from_le_bytes(self.array(ptr)?))
    }

    /// Stores a `u8` at `ptr`.
    pub fn write_u8(&mut self, ptr: u32, v: u8) -> WasiResult<()> {
        self.write_bytes(ptr, &[v])
    }

    /// Stores a `u32` at `ptr`.
    pub fn write_u32(&mut self, ptr: u32, v: u32) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// Stores a `u64` at `ptr`.
    pub fn write_u64(&mut self, ptr: u32, v: u64) -> WasiResult<()> {
        self.write_bytes(ptr, &v.to_le_bytes())
    }

    /// A guest string (a path): `len` bytes at `ptr`, which must be UTF-8 (`ilseq` otherwise).
    pub fn read_str(&self, ptr: u32, len: u32) -> WasiResult<String> {
        let bytes = self.slice(ptr, len)?;
        std::str::from_utf8(bytes)
            .map(str::to_string)
            .map_err(|_| Errno::Ilseq)
    }

    /// An iovec list (`iovs_len` records of `{buf: u32, buf_len: u32}` at `iovs`), checked
    /// whole against the memory before anything is transferred.
    pub fn iovecs(&self, iovs: u32, iovs_len: u32) -> WasiResult<Vec<(u32, u32)>> {
        // As many as Linux's IOV_MAX: more is `inval`, as for readv/writev.
        if iovs_len > MAX_IOVECS {
            return Err(Errno::Inval);
        }
        let bytes = iovs_len.checked_mul(size::IOVEC).ok_or(Errno::Fault)?;
        self.range(iovs, bytes)?;
        let mut list = Vec::with_capacity(iovs_len as usize);
        for i in 0..iovs_len {
            let at = iovs + i * size::IOVEC;
            let (buf, len) = (self.read_u32(at)?, self.read_u32(at + 4)?);
            self.range(buf, len)?;
            list.push((buf, len));
        }
        Ok(list)
    }

    /// Gathers the bytes of an iovec list, at most [`MAX_IO`] of them (iovecs may overlap, so
    /// their lengths can add up to more than the memory; the caller reports a short transfer).
    pub fn gather(&self, iovs: &[(u32, u32)]) -> WasiResult<Vec<u8>> {
        let total: usize = iovs.iter().map(|&(_, len)| len as usize).sum();
        let mut out = Vec::with_capacity(total.min(MAX_IO));
        for &(buf, len) in iovs {
            let room = MAX_IO - out.len();
            if room == 0 {
                break;
            }
            let n = (len as usize).min(room) as u32;
            out.extend_from_slice(self.slice(buf, n)?);
        }
        Ok(out)
    }

    /// Scatters `data` over an iovec list; returns how many bytes were placed.
    pub fn scatter(&mut self, iovs: &[(u32, u32)], mut data: &[u8]) -> WasiResult<usize> {
        let mut placed = 0;
        for &(buf, len) in iovs {
            if data.is_empty() {
                break;
            }
            let n = data.len().min(len as usize);
            self.slice_mut(buf, n as u32)?.copy_from_slice(&data[..n]);
            data = &data[n..];
            placed += n;
        }
        Ok(placed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_accesses_fault() {
        let mut bytes = vec![0u8; 16];
        let mut mem = GuestMemory::new(&mut bytes);
        assert_eq!(mem.read_u32(12), Ok(0));
        assert_eq!(mem.read_u32(13), Err(Errno::Fault));
        assert_eq!(mem.read_u64(u32::MAX), Err(Errno::Fault));
        assert_eq!(mem.write_u64(9, 1), Err(Errno::Fault));
        assert_eq!(mem.slice(16, 0).map(<[u8]>::len), Ok(0));
        assert_eq!(mem.slice(17, 0).map(<[u8]>::len), Err(Errno::Fault));
        // More iovecs than IOV_MAX: `inval` (as readv/writev), before any pointer is looked at.
        assert_eq!(mem.iovecs(8, u32::MAX), Err(Errno::Inval));
        assert_eq!(mem.iovecs(8, MAX_IOVECS + 1), Err(Errno::Inval));
        assert_eq!(mem.iovecs(8, MAX_IOVECS), Err(Errno::Fault));
    }

    #[test]
    fn unaligned_values_round_trip() {
        let mut bytes = vec![0u8; 32];
        let mut mem = GuestMemory::new(&mut bytes);
        mem.write_u64(3, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(mem.read_u64(3), Ok(0x0102_0304_0506_0708));
        mem.write_u32(17, 0xdead_beef).unwrap();
        assert_eq!(mem.read_u32(17), Ok(0xdead_beef));
        assert_eq!(mem.read_u16(17), Ok(0xbeef));
    }

    #[test]
    fn iovecs_are_checked_whole() {
        let mut bytes = vec![0u8; 64];
        let mut mem = GuestMemory::new(&mut bytes);
        // Two iovecs at 0: (32, 4) and (60, 8) - the second runs past the end.
        mem.write_u32(0, 32).unwrap();
        mem.write_u32(4, 4).unwrap();
        mem.write_u32(8, 60).unwrap();
        mem.write_u32(12, 8).unwrap();
        assert_eq!(mem.iovecs(0, 2), Err(Errno::Fault));
        mem.write_u32(12, 4).unwrap();
        let iovs = mem.iovecs(0, 2).unwrap();
        assert_eq!(mem.scatter(&iovs, b"abcdefghij").unwrap(), 8);
        assert_eq!(mem.gather(&iovs).unwrap(), b"abcdefgh");
    }
}
