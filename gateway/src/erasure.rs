//! Stripe geometry and Reed-Solomon coding.
//!
//! An object (or part) of `size` bytes is cut into stripes of `stripe_size` bytes (the last one
//! shorter). A stripe of `len` bytes becomes k data shards of `shard_len(len)` bytes each — the
//! stripe's bytes in order, zero-padded at the end — plus m parity shards of the same length.
//! The code is systematic: reading the data shards needs no decoding at all.

use bytes::{Bytes, BytesMut};
use coffer_proto::pb::metadata::DataLayout;

use crate::error::{GatewayError, GatewayResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub data_shards: usize,
    pub parity_shards: usize,
    pub stripe_size: u64,
    pub size: u64,
}

impl Geometry {
    /// The geometry of stored data, as its layout records it.
    pub fn of(layout: &DataLayout) -> Geometry {
        Geometry {
            data_shards: layout.data_shards as usize,
            parity_shards: layout.parity_shards as usize,
            stripe_size: layout.stripe_size.max(1),
            size: layout.size,
        }
    }

    pub fn stripe_count(&self) -> u64 {
        self.size.div_ceil(self.stripe_size)
    }

    /// Bytes of object data in stripe `stripe`.
    pub fn stripe_len(&self, stripe: u64) -> u64 {
        let start = stripe * self.stripe_size;
        self.stripe_size.min(self.size.saturating_sub(start))
    }

    /// Length of every shard of a stripe holding `stripe_len` bytes. Even, because the coder
    /// works on 2-byte symbols.
    pub fn shard_len(&self, stripe_len: u64) -> u64 {
        let per_shard = stripe_len.div_ceil(self.data_shards as u64);
        per_shard + (per_shard & 1)
    }

    pub fn total_shards(&self) -> usize {
        self.data_shards + self.parity_shards
    }
}

/// Codes one stripe: returns k + m shards of equal length. Data shards are slices of the input
/// when it needs no padding, so a full stripe is not copied.
pub fn encode_stripe(geometry: &Geometry, stripe: Bytes) -> GatewayResult<Vec<Bytes>> {
    let k = geometry.data_shards;
    let shard_len = geometry.shard_len(stripe.len() as u64) as usize;
    let padded = if stripe.len() == k * shard_len {
        stripe
    } else {
        let mut buf = BytesMut::zeroed(k * shard_len);
        buf[..stripe.len()].copy_from_slice(&stripe);
        buf.freeze()
    };
    let mut shards: Vec<Bytes> = (0..k).map(|i| padded.slice(i * shard_len..(i + 1) * shard_len)).collect();
    if geometry.parity_shards > 0 {
        let parity = reed_solomon_simd::encode(k, geometry.parity_shards, shards.iter())
            .map_err(|e| GatewayError::Codec(e.to_string()))?;
        shards.extend(parity.into_iter().map(Bytes::from));
    }
    Ok(shards)
}

/// Rebuilds the missing data shards of a stripe from any k of its shards (`shards[i]` is
/// `Some` when shard i was read and verified). Returns the k data shards in order.
pub fn reconstruct_data(geometry: &Geometry, stripe: u64, shards: Vec<Option<Bytes>>) -> GatewayResult<Vec<Bytes>> {
    let k = geometry.data_shards;
    let available = shards.iter().filter(|s| s.is_some()).count();
    if available < k {
        return Err(GatewayError::NotEnoughShards { stripe, available, needed: k });
    }
    if shards[..k].iter().all(Option::is_some) {
        return Ok(shards.into_iter().take(k).flatten().collect());
    }
    let originals = shards[..k].iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s)));
    let recovery = shards[k..].iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s)));
    let mut restored = reed_solomon_simd::decode(k, geometry.parity_shards, originals, recovery)
        .map_err(|e| GatewayError::Codec(e.to_string()))?;
    let mut out = Vec::with_capacity(k);
    for (i, shard) in shards.into_iter().take(k).enumerate() {
        match shard {
            Some(s) => out.push(s),
            None => {
                let rebuilt = restored
                    .remove(&i)
                    .ok_or_else(|| GatewayError::Codec(format!("decoder did not restore shard {i}")))?;
                out.push(Bytes::from(rebuilt));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry(k: usize, m: usize, stripe_size: u64, size: u64) -> Geometry {
        Geometry { data_shards: k, parity_shards: m, stripe_size, size }
    }

    fn pattern(len: usize) -> Bytes {
        (0..len).map(|i| (i * 131 % 251) as u8).collect::<Vec<_>>().into()
    }

    #[test]
    fn stripe_math() {
        let g = geometry(4, 2, 1024, 2049);
        assert_eq!(g.stripe_count(), 3);
        assert_eq!(g.stripe_len(0), 1024);
        assert_eq!(g.stripe_len(2), 1);
        assert_eq!(g.shard_len(1024), 256);
        assert_eq!(g.shard_len(1), 2);
        assert_eq!(g.shard_len(9), 4);
        assert_eq!(geometry(4, 2, 1024, 0).stripe_count(), 0);
    }

    #[test]
    fn any_m_losses_are_recovered() {
        for (k, m, len) in [(4, 2, 1000), (4, 2, 4096), (1, 1, 7), (3, 3, 10), (2, 1, 1)] {
            let g = geometry(k, m, 4096, len as u64);
            let data = pattern(len);
            let shards = encode_stripe(&g, data.clone()).expect("encode");
            assert_eq!(shards.len(), k + m);
            // Lose the first m shards (all data shards when m >= k).
            let damaged: Vec<Option<Bytes>> =
                shards.iter().enumerate().map(|(i, s)| (i >= m).then(|| s.clone())).collect();
            let rebuilt = reconstruct_data(&g, 0, damaged).expect("reconstruct");
            let joined: Vec<u8> = rebuilt.iter().flat_map(|s| s.iter().copied()).collect();
            assert_eq!(&joined[..len], &data[..], "k={k} m={m} len={len}");
        }
    }

    #[test]
    fn too_many_losses_is_an_error() {
        let g = geometry(4, 2, 4096, 4096);
        let shards = encode_stripe(&g, pattern(4096)).expect("encode");
        let damaged: Vec<Option<Bytes>> = shards.into_iter().enumerate().map(|(i, s)| (i >= 3).then_some(s)).collect();
        assert!(matches!(reconstruct_data(&g, 7, damaged), Err(GatewayError::NotEnoughShards { stripe: 7, .. })));
    }

    #[test]
    fn without_parity_the_data_shards_are_the_stripe() {
        let g = geometry(1, 0, 4096, 5);
        let shards = encode_stripe(&g, pattern(5)).expect("encode");
        assert_eq!(shards.len(), 1);
        assert_eq!(&shards[0][..5], &pattern(5)[..]);
    }
}
