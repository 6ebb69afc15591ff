//! Recording concurrent histories for the linearizability checker: real
//! client threads against a real server, timestamps around each request.

use super::linearizability::{History, Input, Operation, Output};

/// The kind of operation a history recorder issues next.
pub enum Pick {
    /// A read.
    Get,
    /// A write of a value unique to the client and sequence number.
    Put,
    /// A delete.
    Del,
}

/// Records a history for the linearizability checker: one thread per client
/// in `clients`, released together, each issuing `ops_per_client` operations
/// on random keys from `keys` (xorshift64, seeded per client). `pick` chooses
/// the operation from the random draw, `exec` runs it on that thread's client
/// and returns its output; call and return times are taken around `exec`.
pub fn record_history<C: Send>(
    clients: Vec<C>,
    ops_per_client: usize,
    keys: &[Vec<u8>],
    pick: impl Fn(u64) -> Pick + Sync,
    exec: impl Fn(&mut C, &[u8], &Input) -> Output + Sync,
) -> History {
    let base = std::time::Instant::now();
    let barrier = std::sync::Barrier::new(clients.len());
    let (pick, exec, barrier) = (&pick, &exec, &barrier);
    let parts = std::thread::scope(|scope| {
        let handles: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(client, mut c)| {
                scope.spawn(move || {
                    let mut rng =
                        0x9E37_79B9_7F4A_7C15u64 ^ ((client as u64 + 1) * 0x1234_5678_9ABC_DEF1);
                    let mut ops = Vec::with_capacity(ops_per_client);
                    barrier.wait();
                    for seq in 0..ops_per_client {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        let key = keys[(rng % keys.len() as u64) as usize].clone();
                        let input = match pick(rng >> 32) {
                            Pick::Get => Input::Get,
                            Pick::Put => Input::Put(format!("{client}-{seq}").into_bytes()),
                            Pick::Del => Input::Del,
                        };
                        let call = base.elapsed().as_nanos() as u64;
                        let output = exec(&mut c, &key, &input);
                        let ret = base.elapsed().as_nanos() as u64;
                        ops.push(Operation {
                            client,
                            key,
                            input,
                            output,
                            call,
                            ret,
                        });
                    }
                    ops
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    History::from_parts(parts)
}
