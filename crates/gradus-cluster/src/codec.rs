//! The codecs that carry gradus's parts of a plan between client, scheduler and
//! executors: the clean stage's `input` table and its scan ([`gradus_clean::scan`]),
//! gradus's functions with their settings ([`gradus_clean::udf::UdfSpec`]) and the
//! tokenize stage's shard jobs ([`crate::encode`]). Everything
//! else goes to Ballista's own codecs. Our payloads start with a tag that Ballista's
//! protobuf messages cannot start with, so decoding tells the two apart.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::catalog::TableProvider;
use datafusion::common::{DataFusionError, Result, TableReference};
use datafusion::datasource::file_format::FileFormatFactory;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Extension, LogicalPlan, ScalarUDF};
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};
use gradus_clean::scan::IngestSource;
use gradus_clean::source::{SourceExec, SourceTable};
use gradus_clean::udf::UdfSpec;

use crate::encode::ShardJob;

/// Tags of our payloads. A protobuf message starts with a field key, never with `0xFF`.
const TABLE: &[u8] = b"\xFFgradus.ingest_table\n";
const SCAN: &[u8] = b"\xFFgradus.ingest_exec\n";
const UDF: &[u8] = b"\xFFgradus.udf\n";
const SHARD_TABLE: &[u8] = b"\xFFgradus.shard_encode_table\n";
const SHARD_SCAN: &[u8] = b"\xFFgradus.shard_encode_exec\n";

fn tagged(tag: &[u8], payload: Vec<u8>, buf: &mut Vec<u8>) {
    buf.extend_from_slice(tag);
    buf.extend(payload);
}

/// Writes `payload` with `tag` if there is one (the node was ours).
fn tagged_if(tag: &[u8], payload: Option<Result<Vec<u8>>>, buf: &mut Vec<u8>) -> Result<bool> {
    let Some(payload) = payload else {
        return Ok(false);
    };
    tagged(tag, payload?, buf);
    Ok(true)
}

/// Writes one of gradus's functions, or hands `node` to `other` (Ballista's codec).
fn encode_udf(
    node: &ScalarUDF,
    buf: &mut Vec<u8>,
    other: impl FnOnce(&ScalarUDF, &mut Vec<u8>) -> Result<()>,
) -> Result<()> {
    let Some(spec) = UdfSpec::of(node) else {
        return other(node, buf);
    };
    let json = serde_json::to_vec(&spec).map_err(|e| DataFusionError::External(Box::new(e)))?;
    tagged(UDF, json, buf);
    Ok(())
}

/// Reads one of gradus's functions, or hands `buf` to `other` (Ballista's codec).
fn decode_udf(
    buf: &[u8],
    other: impl FnOnce(&[u8]) -> Result<Arc<ScalarUDF>>,
) -> Result<Arc<ScalarUDF>> {
    let Some(json) = buf.strip_prefix(UDF) else {
        return other(buf);
    };
    let spec: UdfSpec =
        serde_json::from_slice(json).map_err(|e| DataFusionError::External(Box::new(e)))?;
    Ok(Arc::new(spec.into_udf()))
}

/// Logical plans: the `input` table and gradus's functions, else Ballista's codec.
#[derive(Debug, Default)]
pub struct LogicalCodec {
    ballista: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for LogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.ballista.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.ballista.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        if let Some(spec) = buf.strip_prefix(TABLE) {
            return Ok(Arc::new(SourceTable::<IngestSource>::decode(spec)?));
        }
        if let Some(job) = buf.strip_prefix(SHARD_TABLE) {
            return Ok(Arc::new(SourceTable::<ShardJob>::decode(job)?));
        }
        self.ballista
            .try_decode_table_provider(buf, table_ref, schema, ctx)
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        let ingest = node.downcast_ref::<SourceTable<IngestSource>>();
        let shard = node.downcast_ref::<SourceTable<ShardJob>>();
        if tagged_if(TABLE, ingest.map(SourceTable::encode), buf)?
            || tagged_if(SHARD_TABLE, shard.map(SourceTable::encode), buf)?
        {
            return Ok(());
        }
        self.ballista
            .try_encode_table_provider(table_ref, node, buf)
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.ballista.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.ballista.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf(buf, |buf| self.ballista.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_udf(node, buf, |node, buf| {
            self.ballista.try_encode_udf(node, buf)
        })
    }
}

/// Physical plans: the `input` scan and gradus's functions, else Ballista's codec.
#[derive(Debug, Default)]
pub struct PhysicalCodec {
    ballista: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for PhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(spec) = buf.strip_prefix(SCAN) {
            return Ok(Arc::new(SourceExec::<IngestSource>::decode(spec)?));
        }
        if let Some(parts) = buf.strip_prefix(SHARD_SCAN) {
            return Ok(Arc::new(SourceExec::<ShardJob>::decode(parts)?));
        }
        self.ballista.try_decode(buf, inputs, ctx, converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let ingest = node.downcast_ref::<SourceExec<IngestSource>>();
        let shard = node.downcast_ref::<SourceExec<ShardJob>>();
        if tagged_if(SCAN, ingest.map(SourceExec::encode), buf)?
            || tagged_if(SHARD_SCAN, shard.map(SourceExec::encode), buf)?
        {
            return Ok(());
        }
        self.ballista.try_encode(node, buf, converter)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        decode_udf(buf, |buf| self.ballista.try_decode_udf(name, buf))
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        encode_udf(node, buf, |node, buf| {
            self.ballista.try_encode_udf(node, buf)
        })
    }
}
