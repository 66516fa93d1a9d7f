//! The sled side of the store: one tree of objects keyed `group/plural/namespace/name` holding
//! JSON, and the last resourceVersion in the default tree.

use super::StoreError;
use crate::resources::{by_plural, ResourceDef};
use serde_json::Value;
use std::path::Path;

const RV_KEY: &[u8] = b"resourceVersion";

pub(super) struct Disk {
    db: sled::Db,
    objects: sled::Tree,
}

fn key(res: &ResourceDef, ns: &str, name: &str) -> Vec<u8> {
    format!("{}/{}/{}/{}", res.group, res.plural, ns, name).into_bytes()
}

impl Disk {
    pub(super) fn open(dir: &Path) -> Result<Disk, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("store"))
            // sled's default cache is 1 GiB; the working set lives in the in-memory maps anyway.
            .cache_capacity(8 * 1024 * 1024)
            .flush_every_ms(Some(100))
            .open()?;
        let objects = db.open_tree("objects")?;
        Ok(Disk { db, objects })
    }

    pub(super) fn last_rv(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .get(RV_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Every stored object with its resource type.
    pub(super) fn load(
        &self,
    ) -> Result<impl Iterator<Item = Result<(&'static ResourceDef, Value), StoreError>> + '_, StoreError>
    {
        Ok(self.objects.iter().map(|item| {
            let (k, v) = item?;
            let key = String::from_utf8_lossy(&k).into_owned();
            let mut parts = key.splitn(4, '/');
            let (group, plural) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let res = by_plural(group, plural)
                .ok_or_else(|| StoreError::Corrupt(format!("unknown resource in key {key}")))?;
            let obj: Value = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Corrupt(format!("{key}: {e}")))?;
            Ok((res, obj))
        }))
    }

    pub(super) fn put(
        &self,
        res: &ResourceDef,
        ns: &str,
        name: &str,
        obj: &Value,
        rv: u64,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(obj).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.objects.insert(key(res, ns, name), bytes)?;
        self.db.insert(RV_KEY, &rv.to_be_bytes())?;
        Ok(())
    }

    pub(super) fn remove(&self, res: &ResourceDef, ns: &str, name: &str, rv: u64) -> Result<(), StoreError> {
        self.objects.remove(key(res, ns, name))?;
        self.db.insert(RV_KEY, &rv.to_be_bytes())?;
        Ok(())
    }

    pub(super) async fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_async().await?;
        Ok(())
    }
}
