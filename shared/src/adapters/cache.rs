//! A per-process cache in front of the channel directory.
//!
//! Webhooks look up the same few channels again and again; a warm Lambda answers them
//! from memory for a short while. Only found channels are cached, so a newly connected
//! channel works at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::Error;
use crate::domain::ids::ChannelId;
use crate::ports::{ChannelDirectory, RoutedChannel};

/// How long a found channel is reused.
pub const CHANNEL_TTL: Duration = Duration::from_secs(60);
/// Most channels kept (a Lambda instance serves a few).
const CAPACITY: usize = 1024;

/// Caches found channels by external id and by id.
#[derive(Debug)]
pub struct CachedDirectory<D> {
    inner: D,
    entries: Mutex<HashMap<String, (Instant, RoutedChannel)>>,
}

impl<D> CachedDirectory<D> {
    /// Wraps a directory.
    pub fn new(inner: D) -> Self {
        Self {
            inner,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &str) -> Option<RoutedChannel> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < CHANNEL_TTL)
            .map(|(_, c)| c.clone())
    }

    fn put(&self, key: String, channel: &RoutedChannel) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.retain(|_, (at, _)| at.elapsed() < CHANNEL_TTL);
                if entries.len() >= CAPACITY {
                    entries.clear();
                }
            }
            entries.insert(key, (Instant::now(), channel.clone()));
        }
    }

    async fn cached<F>(&self, key: String, load: F) -> Result<Option<RoutedChannel>, Error>
    where
        F: Future<Output = Result<Option<RoutedChannel>, Error>>,
    {
        if let Some(hit) = self.get(&key) {
            return Ok(Some(hit));
        }
        let found = load.await?;
        if let Some(channel) = &found {
            self.put(key, channel);
        }
        Ok(found)
    }
}

impl<D: ChannelDirectory> ChannelDirectory for CachedDirectory<D> {
    async fn by_external_id(&self, external_id: &str) -> Result<Option<RoutedChannel>, Error> {
        self.cached(
            format!("ext:{external_id}"),
            self.inner.by_external_id(external_id),
        )
        .await
    }

    async fn by_id(&self, id: &ChannelId) -> Result<Option<RoutedChannel>, Error> {
        self.cached(format!("id:{id}"), self.inner.by_id(id)).await
    }

    fn known_by_id(&self, id: &ChannelId) -> Option<RoutedChannel> {
        self.get(&format!("id:{id}"))
    }

    fn remember(&self, channel: &RoutedChannel) {
        self.put(format!("id:{}", channel.channel.id), channel);
    }
}
