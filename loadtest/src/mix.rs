//! The operation mix of the `mixed` workload: `get=45,put=30,delete=10,stat=15`.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

use crate::stats::Op;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Op, u32)>,
    total: u32,
}

impl Mix {
    /// Draws an operation with probability proportional to its weight.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Op {
        let mut x = rng.random_range(0..self.total);
        for &(op, weight) in &self.weights {
            if x < weight {
                return op;
            }
            x -= weight;
        }
        // Unreachable: the weights add up to `total`.
        self.weights.last().map_or(Op::Get, |&(op, _)| op)
    }

    pub fn weights(&self) -> &[(Op, u32)] {
        &self.weights
    }
}

impl Default for Mix {
    fn default() -> Self {
        "get=45,put=30,delete=10,stat=15".parse().expect("the default mix parses")
    }
}

impl FromStr for Mix {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut weights: Vec<(Op, u32)> = Vec::new();
        for item in s.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (name, weight) =
                item.split_once('=').ok_or_else(|| format!("bad mix item {item:?}: expected OP=WEIGHT"))?;
            let op = match name.trim().to_ascii_lowercase().as_str() {
                "get" => Op::Get,
                "put" => Op::Put,
                "delete" | "del" => Op::Delete,
                "stat" | "head" => Op::Stat,
                other => return Err(format!("unknown operation {other:?} in the mix (get, put, delete, stat)")),
            };
            let weight: u32 = weight.trim().parse().map_err(|_| format!("bad weight in mix item {item:?}"))?;
            if weights.iter().any(|(seen, _)| *seen == op) {
                return Err(format!("{} appears twice in the mix", op.name()));
            }
            if weight > 0 {
                weights.push((op, weight));
            }
        }
        let total = weights.iter().try_fold(0u32, |sum, (_, w)| sum.checked_add(*w)).ok_or("mix weights too large")?;
        if total == 0 {
            return Err("the mix needs at least one operation with a positive weight".into());
        }
        Ok(Mix { weights, total })
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> =
            self.weights().iter().map(|(op, w)| format!("{}={w}", op.name().to_ascii_lowercase())).collect();
        write!(f, "{}", items.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn parses_mixes() {
        let mix: Mix = "get=45, PUT=30,delete=10,head=15".parse().expect("mix");
        assert_eq!(mix.weights(), &[(Op::Get, 45), (Op::Put, 30), (Op::Delete, 10), (Op::Stat, 15)]);
        assert_eq!(mix.to_string(), "get=45,put=30,delete=10,stat=15");
        assert_eq!(Mix::default(), mix);
        assert_eq!("get=1,put=0".parse::<Mix>().expect("mix").weights(), &[(Op::Get, 1)]);
        assert!("get=0".parse::<Mix>().is_err());
        assert!("list=1".parse::<Mix>().is_err());
        assert!("get".parse::<Mix>().is_err());
        assert!("get=x".parse::<Mix>().is_err());
        assert!("get=1,get=2".parse::<Mix>().is_err());
    }

    #[test]
    fn picks_in_proportion() {
        let mix: Mix = "get=60,put=30,stat=10".parse().expect("mix");
        let mut rng = SmallRng::seed_from_u64(3);
        let n = 100_000;
        let mut counts = [0u32; 3];
        for _ in 0..n {
            match mix.pick(&mut rng) {
                Op::Get => counts[0] += 1,
                Op::Put => counts[1] += 1,
                Op::Stat => counts[2] += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        for (count, share) in counts.iter().zip([0.6, 0.3, 0.1]) {
            let got = *count as f64 / n as f64;
            assert!((got - share).abs() < 0.01, "{counts:?}");
        }
    }
}
