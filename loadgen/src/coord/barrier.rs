//! Registration and the barrier: every part of a run registers, and none starts until all N
//! have; the part that completes the set publishes the common start (Redis `TIME` + a lead).
//!
//! A run id has generations. Registration joins the open one, whose parts are still waiting;
//! a started or aborted generation is never joined again, so a new attempt with the same run id
//! opens a new generation instead of mixing with a stale one. Registrations of parts whose
//! heartbeat stopped (killed while waiting) are dropped first, and a generation left with
//! nobody waiting is abandoned. All of it in one Lua script, so two parts registering at once
//! see one order.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::bail;
use redis::Script;

use super::{ALIVE, Coordinator, PartRecord, PartWanted, RUN_TTL, failed};

/// How often a waiting part looks for the start.
const POLL: Duration = Duration::from_millis(100);

/// KEYS[1]: the run's base key. ARGV: wanted part (`auto` or an index), N, fingerprint, spec,
/// the part's record, lead (µs), heartbeat lifetime (ms), key lifetime (s).
/// Returns `{ok, generation, part}`, `{conflict, generation, N}`, `{taken, generation, part,
/// record}` or `{full, generation}`.
const REGISTER: &str = r"
local base, want, n, fp = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3]
local alive_ms, ttl = tonumber(ARGV[7]), tonumber(ARGV[8])
local function meta_of(g) return base .. ':' .. g .. ':meta' end
local function alive_of(g, i) return base .. ':' .. g .. ':alive:' .. i end
local gen = redis.call('GET', base .. ':open')
if gen then
  local meta = meta_of(gen)
  local parts = tonumber(redis.call('HGET', meta, 'n') or '0')
  local live = 0
  for i = 0, parts - 1 do
    if redis.call('HEXISTS', meta, 'reg:' .. i) == 1 then
      if redis.call('EXISTS', alive_of(gen, i)) == 0 then
        redis.call('HDEL', meta, 'reg:' .. i)
      else
        live = live + 1
      end
    end
  end
  if live == 0 then
    redis.call('HSET', meta, 'state', 'abandoned')
    redis.call('EXPIRE', meta, ttl)
    gen = false
  end
end
if not gen then
  gen = tostring(redis.call('INCR', base .. ':gen'))
  redis.call('EXPIRE', base .. ':gen', ttl)
  redis.call('SET', base .. ':open', gen, 'EX', ttl)
  redis.call('HSET', meta_of(gen), 'n', n, 'fingerprint', fp, 'spec', ARGV[4], 'state', 'open')
end
local meta = meta_of(gen)
if redis.call('HGET', meta, 'fingerprint') ~= fp or tonumber(redis.call('HGET', meta, 'n')) ~= n then
  return {'conflict', gen, redis.call('HGET', meta, 'n')}
end
local index = false
if want == 'auto' then
  for i = 0, n - 1 do
    if redis.call('HEXISTS', meta, 'reg:' .. i) == 0 then
      index = i
      break
    end
  end
  if not index then return {'full', gen} end
else
  index = tonumber(want)
  local there = redis.call('HGET', meta, 'reg:' .. index)
  if there then return {'taken', gen, tostring(index), there} end
end
redis.call('HSET', meta, 'reg:' .. index, ARGV[5])
redis.call('SET', alive_of(gen, index), '1', 'PX', alive_ms)
redis.call('EXPIRE', meta, ttl)
local count = 0
for i = 0, n - 1 do
  count = count + redis.call('HEXISTS', meta, 'reg:' .. i)
end
if count == n then
  local t = redis.call('TIME')
  redis.call('HSET', meta, 'state', 'started', 'time_s', t[1], 'time_us', t[2], 'lead_us', ARGV[6])
  redis.call('DEL', base .. ':open')
  redis.call('SET', base .. ':started', gen, 'EX', ttl)
end
return {'ok', gen, tostring(index)}
";

/// KEYS[1]: the run's base key; ARGV: generation, reason. Aborts the generation if it is
/// still open; returns its state after (`aborted`, or `started` when the last part came first).
const ABORT: &str = r"
local meta = KEYS[1] .. ':' .. ARGV[1] .. ':meta'
local state = redis.call('HGET', meta, 'state')
if state == 'open' then
  redis.call('HSET', meta, 'state', 'aborted', 'reason', ARGV[2])
  if redis.call('GET', KEYS[1] .. ':open') == ARGV[1] then
    redis.call('DEL', KEYS[1] .. ':open')
  end
  return 'aborted'
end
return state or 'gone'
";

/// KEYS[1]: the run's base key; ARGV: generation, part. Takes the part's registration back
/// while the generation is still open.
const LEAVE: &str = r"
local meta = KEYS[1] .. ':' .. ARGV[1] .. ':meta'
if redis.call('HGET', meta, 'state') == 'open' then
  redis.call('HDEL', meta, 'reg:' .. ARGV[2])
  redis.call('DEL', KEYS[1] .. ':' .. ARGV[1] .. ':alive:' .. ARGV[2])
end
return 1
";

/// What a part registers with.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub part: PartWanted,
    /// N: how many parts the run has.
    pub parts: u32,
    /// What every part of the run must agree on (the scenario as run, but for its target).
    pub fingerprint: &'a str,
    /// What a collector needs to judge the run (kept from the generation's first part).
    pub spec: &'a str,
    pub record: &'a PartRecord,
    /// From the moment the last part registers to the start.
    pub lead: Duration,
}

/// A part's place in one generation of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub generation: u64,
    pub part: u32,
    pub parts: u32,
}

impl Coordinator {
    /// Registers a part; fails when its part is taken, or when parts of another run with this
    /// run id are waiting.
    pub async fn register(&self, r: &Registration<'_>) -> anyhow::Result<Seat> {
        let want = match r.part {
            PartWanted::Index(i) => i.to_string(),
            PartWanted::Auto => "auto".to_owned(),
        };
        let record = serde_json::to_string(r.record)?;
        let reply: Vec<String> = Script::new(REGISTER)
            .key(&self.base)
            .arg(&want)
            .arg(r.parts)
            .arg(r.fingerprint)
            .arg(r.spec)
            .arg(&record)
            .arg(r.lead.as_micros() as u64)
            .arg(ALIVE.as_millis() as u64)
            .arg(RUN_TTL.as_secs())
            .invoke_async(&mut self.con())
            .await
            .map_err(|e| failed("registering", &self.url, e))?;
        let field = |i: usize| reply.get(i).map(String::as_str).unwrap_or_default();
        let generation = field(1).parse().unwrap_or_default();
        let id = &self.run_id;
        match field(0) {
            "ok" => Ok(Seat {
                generation,
                part: field(2).parse()?,
                parts: r.parts,
            }),
            "conflict" => bail!(
                "run {id:?}: parts of another run with this id are waiting at {} ({} parts, or \
                 another scenario, seed or overrides): give every part of one run the same \
                 scenario, flags and N, or use another --run-id",
                self.url,
                field(2)
            ),
            "taken" => {
                let by = serde_json::from_str::<PartRecord>(field(3))
                    .map(|p| format!("host {} (pid {})", p.host, p.pid))
                    .unwrap_or_else(|_| "another host".to_owned());
                bail!(
                    "run {id:?}: part {} is already registered by {by} and still running: two \
                     hosts were given the same --part",
                    field(2)
                )
            }
            "full" => bail!("run {id:?}: all {} parts are taken", r.parts),
            other => bail!("the coordinator answered {other:?} to a registration"),
        }
    }

    /// Waits until the run starts; returns the common start on the coordinator's clock (µs).
    /// After `timeout` the run is aborted for every part, and the error names the parts that
    /// never arrived.
    pub async fn wait_for_start(&self, seat: Seat, timeout: Duration) -> anyhow::Result<u64> {
        let deadline = tokio::time::Instant::now() + timeout;
        let meta = self.key(seat.generation, "meta");
        loop {
            let (state, s, us, lead, reason): StartFields = redis::cmd("HMGET")
                .arg(&meta)
                .arg(&["state", "time_s", "time_us", "lead_us", "reason"])
                .query_async(&mut self.con())
                .await
                .map_err(|e| failed("reading the barrier", &self.url, e))?;
            match state.as_deref() {
                Some("started") => return start_time(s, us, lead),
                Some("aborted") => bail!(
                    "run {:?} was called off: {}",
                    self.run_id,
                    reason.unwrap_or_default()
                ),
                Some("open") if tokio::time::Instant::now() >= deadline => {
                    let why = self.missing_parts(seat, timeout).await?;
                    if self.abort(seat, &why).await? == "aborted" {
                        bail!("run {:?} was called off: {why}", self.run_id);
                    }
                }
                Some("open") => {}
                other => bail!(
                    "run {:?}: generation {} is {}",
                    self.run_id,
                    seat.generation,
                    other.unwrap_or("gone (expired)")
                ),
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Takes this part's registration back (it stops before the start).
    pub async fn leave(&self, seat: Seat) {
        let _: Result<i64, _> = Script::new(LEAVE)
            .key(&self.base)
            .arg(seat.generation)
            .arg(seat.part)
            .invoke_async(&mut self.con())
            .await;
    }

    async fn abort(&self, seat: Seat, reason: &str) -> anyhow::Result<String> {
        Script::new(ABORT)
            .key(&self.base)
            .arg(seat.generation)
            .arg(reason)
            .invoke_async(&mut self.con())
            .await
            .map_err(|e| failed("calling the run off", &self.url, e))
    }

    /// Why the barrier did not open: the parts missing, and who was there.
    async fn missing_parts(&self, seat: Seat, waited: Duration) -> anyhow::Result<String> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.key(seat.generation, "meta"))
            .query_async(&mut self.con())
            .await
            .map_err(|e| failed("reading the registrations", &self.url, e))?;
        let mut alive = Vec::new();
        for i in 0..seat.parts {
            let key = self.key(seat.generation, &format!("alive:{i}"));
            let there: bool = redis::cmd("EXISTS")
                .arg(key)
                .query_async(&mut self.con())
                .await
                .map_err(|e| failed("reading the heartbeats", &self.url, e))?;
            alive.push(there);
        }
        Ok(barrier_report(&fields, &alive, waited))
    }
}

type StartFields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// The start on the coordinator's clock: the registration's `TIME` plus the lead.
fn start_time(s: Option<String>, us: Option<String>, lead: Option<String>) -> anyhow::Result<u64> {
    let number = |v: Option<String>| -> anyhow::Result<u64> {
        let text = v.unwrap_or_default();
        text.parse()
            .map_err(|_| anyhow::anyhow!("the coordinator's start time is unreadable: {text:?}"))
    };
    Ok(number(s)? * 1_000_000 + number(us)? + number(lead)?)
}

/// "part 2 of 3 never arrived within 2m (part 0 on host a, part 1 on host b were waiting)".
fn barrier_report(meta: &HashMap<String, String>, alive: &[bool], waited: Duration) -> String {
    let mut missing = Vec::new();
    let mut waiting = Vec::new();
    for (i, &is_alive) in alive.iter().enumerate() {
        let record = meta
            .get(&format!("reg:{i}"))
            .and_then(|r| serde_json::from_str::<PartRecord>(r).ok());
        match record {
            Some(r) if is_alive => waiting.push(format!("part {i} on {}", r.host)),
            _ => missing.push(i.to_string()),
        }
    }
    let n = alive.len();
    let parts = if missing.len() == 1 { "part" } else { "parts" };
    format!(
        "{parts} {} of {n} never arrived within {} ({} waiting)",
        missing.join(", "),
        crate::scenario::format_duration(waited),
        if waiting.is_empty() {
            "none".to_owned()
        } else {
            waiting.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_barrier_report_names_the_missing_parts_and_who_waited() {
        let record = |host: &str| {
            serde_json::to_string(&PartRecord {
                host: host.into(),
                pid: 1,
                clock_offset_us: 0,
                clock_rtt_us: 1,
            })
            .expect("json")
        };
        let meta = HashMap::from([
            ("reg:0".to_owned(), record("a")),
            ("reg:1".to_owned(), record("b")),
            ("n".to_owned(), "4".to_owned()),
        ]);
        // Part 1 registered but its heartbeat stopped: missing too.
        let report = barrier_report(&meta, &[true, false, false, false], Duration::from_secs(5));
        assert_eq!(
            report,
            "parts 1, 2, 3 of 4 never arrived within 5s (part 0 on a waiting)"
        );
    }

    #[test]
    fn the_start_is_redis_time_plus_the_lead() {
        let t = |s: &str| Some(s.to_owned());
        assert_eq!(
            start_time(t("1700000000"), t("250000"), t("3000000")).expect("numbers"),
            1_700_000_003_250_000
        );
        assert!(start_time(None, t("1"), t("1")).is_err());
    }
}
