//! A DynamoDB client interceptor that asks every call for `ReturnConsumedCapacity=TOTAL`
//! and adds up the capacity units DynamoDB reports, per operation (for cost benchmarks).
//!
//! It sits on the SDK client, not in `DynamoRecordStore`: build the client with
//! `config.interceptor(meter.clone())` and every store call through it is counted. Failed
//! calls (a cancelled transaction, a failed condition) report no capacity, so they are
//! counted as calls only.
//!
//! DynamoDB Local's figures are not AWS's bill (it reports 2 units for a transaction of
//! three items), so each write call is also priced by AWS's published rules, from the
//! request itself (`modelled_write_units`): 1 unit per KiB of item for a put, 2 per KiB
//! for each action of a transaction, the same again for the `gsi1` index copy of a put
//! item, 1 for an update or delete outside a transaction (deskbridge's are small items).
//! This model counts failed conditional writes too, as AWS charges them.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemInput, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemInput, PutItemOutput};
use aws_sdk_dynamodb::operation::query::{QueryError, QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsInput, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemInput, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Calls and capacity units of one DynamoDB operation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OperationUsage {
    pub calls: u64,
    /// Calls that answered with an error (no capacity reported).
    pub failed: u64,
    pub read_units: f64,
    pub write_units: f64,
    /// Write units by AWS's pricing rules, from the requests (see the module doc).
    pub modelled_write_units: f64,
}

/// What the meter saw, by operation name (`GetItem`, `TransactWriteItems`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacityUsage {
    pub by_operation: BTreeMap<&'static str, OperationUsage>,
}

impl CapacityUsage {
    pub fn read_units(&self) -> f64 {
        self.by_operation.values().map(|u| u.read_units).sum()
    }

    pub fn write_units(&self) -> f64 {
        self.by_operation.values().map(|u| u.write_units).sum()
    }

    pub fn calls(&self) -> u64 {
        self.by_operation.values().map(|u| u.calls).sum()
    }

    pub fn modelled_write_units(&self) -> f64 {
        self.by_operation.values().map(|u| u.modelled_write_units).sum()
    }

    /// What happened between `earlier` (a snapshot of the same meter) and `self`.
    pub fn since(&self, earlier: &CapacityUsage) -> CapacityUsage {
        let mut by_operation = self.by_operation.clone();
        for (op, before) in &earlier.by_operation {
            if let Some(now) = by_operation.get_mut(op) {
                now.calls -= before.calls;
                now.failed -= before.failed;
                now.read_units -= before.read_units;
                now.write_units -= before.write_units;
                now.modelled_write_units -= before.modelled_write_units;
            }
        }
        by_operation.retain(|_, u| u.calls > 0);
        CapacityUsage { by_operation }
    }
}

/// The interceptor; clones share one tally.
#[derive(Debug, Clone, Default)]
pub struct CapacityMeter {
    usage: Arc<Mutex<CapacityUsage>>,
}

/// Whether an operation spends read or write units.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

impl CapacityMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> CapacityUsage {
        self.usage.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn model(&self, op: &'static str, units: f64) {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.by_operation.entry(op).or_default().modelled_write_units += units;
    }

    fn record(&self, op: &'static str, kind: Kind, consumed: &[&ConsumedCapacity], failed: bool) {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let entry = usage.by_operation.entry(op).or_default();
        entry.calls += 1;
        entry.failed += u64::from(failed);
        for c in consumed {
            // TOTAL reports `capacity_units`; the read/write split only where DynamoDB gives it.
            let (read, write) = match (c.read_capacity_units(), c.write_capacity_units()) {
                (None, None) => match kind {
                    Kind::Read => (c.capacity_units().unwrap_or(0.0), 0.0),
                    Kind::Write => (0.0, c.capacity_units().unwrap_or(0.0)),
                },
                (r, w) => (r.unwrap_or(0.0), w.unwrap_or(0.0)),
            };
            entry.read_units += read;
            entry.write_units += write;
        }
    }
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let total = Some(ReturnConsumedCapacity::Total);
        let input = context.input_mut();
        if let Some(i) = input.downcast_mut::<GetItemInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<QueryInput>() {
            i.return_consumed_capacity = total;
        } else if let Some(i) = input.downcast_mut::<PutItemInput>() {
            i.return_consumed_capacity = total;
            self.model("PutItem", i.item.as_ref().map_or(1.0, |item| put_units(item, 1.0)));
        } else if let Some(i) = input.downcast_mut::<UpdateItemInput>() {
            i.return_consumed_capacity = total;
            self.model("UpdateItem", 1.0);
        } else if let Some(i) = input.downcast_mut::<DeleteItemInput>() {
            i.return_consumed_capacity = total;
            self.model("DeleteItem", 1.0);
        } else if let Some(i) = input.downcast_mut::<TransactWriteItemsInput>() {
            i.return_consumed_capacity = total;
            let units = i
                .transact_items
                .iter()
                .flatten()
                .map(|action| match action.put() {
                    Some(put) => put_units(put.item(), 2.0),
                    None => 2.0,
                })
                .sum();
            self.model("TransactWriteItems", units);
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // The input is gone by now (serialised), so the output or error type names the call.
        let output = match context.output_or_error() {
            Ok(output) => output,
            Err(err) => {
                let Some(err) = err.as_operation_error() else {
                    return Ok(()); // a transport failure: DynamoDB saw nothing
                };
                let named = if err.downcast_ref::<GetItemError>().is_some() {
                    Some(("GetItem", Kind::Read))
                } else if err.downcast_ref::<QueryError>().is_some() {
                    Some(("Query", Kind::Read))
                } else if err.downcast_ref::<PutItemError>().is_some() {
                    Some(("PutItem", Kind::Write))
                } else if err.downcast_ref::<UpdateItemError>().is_some() {
                    Some(("UpdateItem", Kind::Write))
                } else if err.downcast_ref::<DeleteItemError>().is_some() {
                    Some(("DeleteItem", Kind::Write))
                } else if err.downcast_ref::<TransactWriteItemsError>().is_some() {
                    Some(("TransactWriteItems", Kind::Write))
                } else {
                    None
                };
                if let Some((op, kind)) = named {
                    self.record(op, kind, &[], true);
                }
                return Ok(());
            }
        };
        let (op, kind, consumed): (_, _, Vec<&ConsumedCapacity>) =
            if let Some(o) = output.downcast_ref::<GetItemOutput>() {
                ("GetItem", Kind::Read, o.consumed_capacity().into_iter().collect())
            } else if let Some(o) = output.downcast_ref::<QueryOutput>() {
                ("Query", Kind::Read, o.consumed_capacity().into_iter().collect())
            } else if let Some(o) = output.downcast_ref::<PutItemOutput>() {
                ("PutItem", Kind::Write, o.consumed_capacity().into_iter().collect())
            } else if let Some(o) = output.downcast_ref::<UpdateItemOutput>() {
                ("UpdateItem", Kind::Write, o.consumed_capacity().into_iter().collect())
            } else if let Some(o) = output.downcast_ref::<DeleteItemOutput>() {
                ("DeleteItem", Kind::Write, o.consumed_capacity().into_iter().collect())
            } else if let Some(o) = output.downcast_ref::<TransactWriteItemsOutput>() {
                (
                    "TransactWriteItems",
                    Kind::Write,
                    o.consumed_capacity().iter().collect(),
                )
            } else {
                return Ok(());
            };
        self.record(op, kind, &consumed, false);
        Ok(())
    }
}

/// Write units of putting `item` at `per_kib` units per KiB (rounded up), plus its copy in
/// the `gsi1` index when it has an index key (projection ALL: the whole item).
fn put_units(item: &HashMap<String, AttributeValue>, per_kib: f64) -> f64 {
    let kib = (item_bytes(item) as f64 / 1024.0).ceil().max(1.0);
    let copies = if item.contains_key("gsi1pk") { 2.0 } else { 1.0 };
    copies * per_kib * kib
}

/// An item's size as DynamoDB counts it: attribute names plus values.
fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter().map(|(name, value)| name.len() + value_bytes(value)).sum()
}

fn value_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::M(m) => 3 + item_bytes(m),
        AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value_bytes(v)).sum::<usize>(),
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().map(String::len).sum(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_cost_a_unit_per_started_kib_and_again_for_the_index_copy() {
        let small = HashMap::from([("pk".to_string(), AttributeValue::S("ticket".into()))]);
        assert_eq!(put_units(&small, 1.0), 1.0);
        assert_eq!(put_units(&small, 2.0), 2.0);
        let mut big = small.clone();
        big.insert("data".into(), AttributeValue::S("x".repeat(1500)));
        assert_eq!(put_units(&big, 1.0), 2.0);
        big.insert("gsi1pk".into(), AttributeValue::S("by-alert".into()));
        assert_eq!(put_units(&big, 2.0), 8.0);
    }
}
