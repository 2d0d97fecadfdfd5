//! Deduplication over the staged documents, as DataFusion queries under a bounded memory
//! pool (aggregations spill to disk beyond it):
//!
//! - exact: documents grouped by the hash of their cleaned text; each group keeps its
//!   smallest key (earliest in input order);
//! - near: documents sharing an LSH band key are candidate pairs (optionally verified by
//!   the share of equal MinHash values); candidate pairs join clusters by connected
//!   components (union-find), and each cluster keeps its smallest key.
//!
//! Every choice depends only on the set of keys and hashes, never on the order rows
//! arrive in, so the result is the same for any number of partitions or threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use datafusion::catalog::MemTable;
use datafusion::prelude::SessionContext;

use crate::error::Result;
use crate::minhash::estimated_jaccard;

/// What dedup decided: each dropped key and the key of the document kept in its place.
#[derive(Debug, Default, Clone)]
pub struct Duplicates {
    pub exact: HashMap<u64, u64>,
    pub near: HashMap<u64, u64>,
    /// Cluster size (kept document included) → number of clusters.
    pub exact_clusters: BTreeMap<u64, u64>,
    pub near_clusters: BTreeMap<u64, u64>,
}

impl Duplicates {
    /// `("exact_duplicate" | "near_duplicate", kept key)` for a dropped key.
    pub fn verdict(&self, key: u64) -> Option<(&'static str, u64)> {
        if let Some(k) = self.exact.get(&key) {
            return Some(("exact_duplicate", *k));
        }
        self.near.get(&key).map(|k| ("near_duplicate", *k))
    }
}

async fn pairs(ctx: &SessionContext, sql: &str) -> Result<Vec<(u64, u64)>> {
    let batches = ctx.sql(sql).await?.collect().await?;
    let mut out = Vec::new();
    for b in &batches {
        let a = b.column(0).as_primitive::<UInt64Type>();
        let c = b.column(1).as_primitive::<UInt64Type>();
        out.extend(a.values().iter().copied().zip(c.values().iter().copied()));
    }
    Ok(out)
}

/// Exact duplicates among kept documents of table `docs`: (dropped key, kept key).
pub async fn exact(ctx: &SessionContext) -> Result<Vec<(u64, u64)>> {
    pairs(
        ctx,
        "WITH groups AS (
            SELECT exact, min(key) AS keeper FROM docs
            WHERE reason IS NULL GROUP BY exact HAVING count(*) > 1)
         SELECT d.key, g.keeper FROM docs d JOIN groups g ON d.exact = g.exact
         WHERE d.reason IS NULL AND d.key <> g.keeper",
    )
    .await
}

/// Candidate pairs for near dedup among kept documents not in table `exact_dups`: each
/// document paired with the smallest key of every band bucket it shares.
pub async fn candidates(ctx: &SessionContext) -> Result<Vec<(u64, u64)>> {
    pairs(
        ctx,
        "WITH kept AS (
            SELECT key, bands FROM docs
            WHERE reason IS NULL AND key NOT IN (SELECT key FROM exact_dups)),
         b AS (SELECT key, unnest(bands) AS band FROM kept),
         buckets AS (SELECT band, min(key) AS root FROM b GROUP BY band HAVING count(*) > 1)
         SELECT DISTINCT b.key, buckets.root FROM b JOIN buckets ON b.band = buckets.band
         WHERE b.key <> buckets.root",
    )
    .await
}

/// A one-column `key` table.
pub fn key_table(keys: impl IntoIterator<Item = u64>) -> Result<MemTable> {
    let schema = Arc::new(Schema::new(vec![Field::new(
        "key",
        DataType::UInt64,
        false,
    )]));
    let array = UInt64Array::from_iter_values(keys);
    let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(array)])?;
    Ok(MemTable::try_new(schema, vec![vec![batch]])?)
}

/// Keeps the candidate pairs whose signatures agree on at least `threshold` of values.
pub async fn verify(
    ctx: &SessionContext,
    edges: Vec<(u64, u64)>,
    threshold: f64,
) -> Result<Vec<(u64, u64)>> {
    let mut involved: Vec<u64> = edges.iter().flat_map(|(a, b)| [*a, *b]).collect();
    involved.sort_unstable();
    involved.dedup();
    ctx.register_table("involved", Arc::new(key_table(involved)?))?;
    let batches = ctx
        .sql("SELECT d.key, d.signature FROM docs d JOIN involved i ON d.key = i.key")
        .await?
        .collect()
        .await?;
    ctx.deregister_table("involved")?;
    let mut sigs: HashMap<u64, Vec<u64>> = HashMap::new();
    for b in &batches {
        let keys = b.column(0).as_primitive::<UInt64Type>();
        let lists = b.column(1).as_list::<i32>();
        for i in 0..b.num_rows() {
            let values = lists.value(i);
            let values = values.as_primitive::<UInt64Type>();
            sigs.insert(keys.value(i), values.values().to_vec());
        }
    }
    let empty = Vec::new();
    Ok(edges
        .into_iter()
        .filter(|(a, b)| {
            let (sa, sb) = (sigs.get(a).unwrap_or(&empty), sigs.get(b).unwrap_or(&empty));
            estimated_jaccard(sa, sb) >= threshold
        })
        .collect())
}

/// Union-find over keys; every component's root is its smallest key.
#[derive(Debug, Default)]
pub struct Components {
    parent: HashMap<u64, u64>,
}

impl Components {
    fn find(&mut self, x: u64) -> u64 {
        let mut root = x;
        while let Some(&p) = self.parent.get(&root) {
            if p == root {
                break;
            }
            root = p;
        }
        // Path compression keeps later finds short.
        let mut node = x;
        while node != root {
            let next = self.parent.get(&node).copied().unwrap_or(root);
            self.parent.insert(node, root);
            node = next;
        }
        root
    }

    pub fn union(&mut self, a: u64, b: u64) {
        self.parent.entry(a).or_insert(a);
        self.parent.entry(b).or_insert(b);
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (small, large) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent.insert(large, small);
        }
    }

    /// Every non-root member and its root (the smallest key of its component).
    pub fn members(mut self) -> HashMap<u64, u64> {
        let keys: Vec<u64> = self.parent.keys().copied().collect();
        keys.into_iter()
            .filter_map(|k| {
                let r = self.find(k);
                (r != k).then_some((k, r))
            })
            .collect()
    }
}

/// Cluster sizes (kept document included) → count, from dropped → kept pairs.
pub fn cluster_sizes(dropped: &HashMap<u64, u64>) -> BTreeMap<u64, u64> {
    let mut per_keeper: HashMap<u64, u64> = HashMap::new();
    for keeper in dropped.values() {
        *per_keeper.entry(*keeper).or_default() += 1;
    }
    let mut sizes = BTreeMap::new();
    for n in per_keeper.values() {
        *sizes.entry(n + 1).or_default() += 1;
    }
    sizes
}

/// Runs exact and near dedup on table `docs` of `ctx`.
pub async fn run(
    ctx: &SessionContext,
    exact_on: bool,
    near_on: bool,
    verify_at: f64,
) -> Result<Duplicates> {
    let mut d = Duplicates::default();
    if exact_on {
        d.exact = exact(ctx).await?.into_iter().collect();
        d.exact_clusters = cluster_sizes(&d.exact);
    }
    if near_on {
        ctx.register_table("exact_dups", Arc::new(key_table(d.exact.keys().copied())?))?;
        let mut edges = candidates(ctx).await?;
        ctx.deregister_table("exact_dups")?;
        if verify_at > 0.0 {
            edges = verify(ctx, edges, verify_at).await?;
        }
        let mut components = Components::default();
        for (a, b) in edges {
            components.union(a, b);
        }
        d.near = components.members();
        d.near_clusters = cluster_sizes(&d.near);
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_root_at_the_smallest_key_whatever_the_order() {
        let edges = [(5, 3), (9, 7), (3, 1), (7, 5), (20, 21)];
        let mut forward = Components::default();
        edges.iter().for_each(|(a, b)| forward.union(*a, *b));
        let mut backward = Components::default();
        edges.iter().rev().for_each(|(a, b)| backward.union(*b, *a));
        let (f, b) = (forward.members(), backward.members());
        assert_eq!(f, b);
        assert_eq!(f[&9], 1);
        assert_eq!(f[&21], 20);
        assert!(!f.contains_key(&1));
        let sizes = cluster_sizes(&f);
        assert_eq!(sizes, BTreeMap::from([(2, 1), (5, 1)]));
    }
}
