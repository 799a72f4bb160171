//! Ranged reads of an object through a few cached, aligned chunks.

use std::future::Future;

use crate::Error;

/// Size of one ranged read.
pub const CHUNK: u64 = 64 * 1024;
/// Chunks kept in memory at once.
const CACHED_CHUNKS: usize = 8;

/// Random access to an object's bytes.
pub trait Blob: Send {
    /// Total size in bytes (the real one, whatever was declared).
    fn len(&self) -> u64;

    /// Whether it has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `len` bytes from `offset` (fewer at the end).
    fn read_at(
        &mut self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;

    /// The version read (an ETag): reads and the final copy are pinned to it, so an
    /// object replaced while it is being checked is never promoted.
    fn version(&self) -> Option<&str> {
        None
    }
}

/// A blob in memory.
#[derive(Debug, Clone)]
pub struct MemoryBlob(pub Vec<u8>);

impl Blob for MemoryBlob {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    async fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.0.len());
        let end = start
            .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
            .min(self.0.len());
        Ok(self.0[start..end].to_vec())
    }
}

/// Reads a blob through a few cached, aligned chunks, counting what it fetched.
#[derive(Debug)]
pub struct ChunkedReader<B> {
    blob: B,
    chunks: Vec<(u64, Vec<u8>)>,
    /// Bytes fetched from the blob so far.
    pub bytes_fetched: u64,
    /// Reads sent to the blob so far.
    pub reads: u32,
}

impl<B: Blob> ChunkedReader<B> {
    /// Wraps a blob.
    pub fn new(blob: B) -> Self {
        Self {
            blob,
            chunks: Vec::new(),
            bytes_fetched: 0,
            reads: 0,
        }
    }

    /// The blob's real size.
    pub fn len(&self) -> u64 {
        self.blob.len()
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.blob.is_empty()
    }

    /// The version being read.
    pub fn version(&self) -> Option<&str> {
        self.blob.version()
    }

    /// A few bytes: from the cache when their chunk is there, else read directly (box
    /// headers far apart must not cost a chunk each).
    pub async fn peek(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let base = offset - offset % CHUNK;
        if self.chunks.iter().any(|(b, _)| *b == base) && offset + len <= base + CHUNK {
            return self.read(offset, len).await;
        }
        let len = len.min(self.len().saturating_sub(offset));
        if len == 0 {
            return Ok(Vec::new());
        }
        self.reads += 1;
        let bytes = self.blob.read_at(offset, len).await?;
        self.bytes_fetched += bytes.len() as u64;
        Ok(bytes)
    }

    /// Up to `len` bytes at `offset` (fewer at the end), through the chunk cache. Spans
    /// larger than a chunk are read in one request and not cached.
    pub async fn read(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, Error> {
        let size = self.len();
        if offset >= size || len == 0 {
            return Ok(Vec::new());
        }
        let len = len.min(size - offset);
        if len > CHUNK {
            self.reads += 1;
            let bytes = self.blob.read_at(offset, len).await?;
            self.bytes_fetched += bytes.len() as u64;
            return Ok(bytes);
        }
        let mut out = Vec::with_capacity(len as usize);
        let mut at = offset;
        while at < offset + len {
            let base = at - at % CHUNK;
            let chunk = self.chunk(base).await?;
            let from = (at - base) as usize;
            if from >= chunk.len() {
                break;
            }
            let to = ((offset + len - base) as usize).min(chunk.len());
            out.extend_from_slice(&chunk[from..to]);
            at = base + to as u64;
        }
        Ok(out)
    }

    async fn chunk(&mut self, base: u64) -> Result<&[u8], Error> {
        if let Some(i) = self.chunks.iter().position(|(b, _)| *b == base) {
            return Ok(&self.chunks[i].1);
        }
        self.reads += 1;
        let bytes = self.blob.read_at(base, CHUNK).await?;
        self.bytes_fetched += bytes.len() as u64;
        if self.chunks.len() >= CACHED_CHUNKS {
            self.chunks.remove(0);
        }
        self.chunks.push((base, bytes));
        Ok(&self.chunks.last().expect("just pushed").1)
    }
}
