-- The helpers of the schedule functions: the library is this file, then
-- each function's body (lease.lua, write.lua, commit.lua, shard.lua,
-- heartbeat.lua) registered as rota_sched_<version>_<name>; each call
-- starts with setup().
--
-- Every function but heartbeat works on one shard, whose keys all share
-- the hash tag {s:<n>}: KEYS[1..5] are the shard's fixed keys, in the
-- order below; each function's own keys follow them. ARGV[1] is the
-- shard's base, "<prefix>:{s:<n>}:", and ARGV[2] names the operation.
-- Keys a function can only name once it has read something -- the hash of
-- an id found in the due index, the index of a tenant found in a hash --
-- are derived from the base; they carry its hash tag, so they are in the
-- shard's slot like the rest.
--
-- A schedule's hash: v (its version, the one its JSON says being
-- ignored), t (its tenant), json (the schedule as serde writes it). Its
-- due instant is its score in DUE, absent when it has none.
-- A history entry: "<occurrence ms> <job id or -> <at ms> <record JSON>",
-- newest first; the prefix is what the functions match and keep, so that
-- they never parse JSON.
local LEASE, DUE, OUTBOX, INBOX, META
local FIXED = 5
local base

local function setup(keys, argv)
  LEASE, DUE, OUTBOX, INBOX, META = keys[1], keys[2], keys[3], keys[4], keys[5]
  base = argv[1]
end

local function tenant_key(t) return base .. 't:' .. t end
local function schedule_key(id) return base .. 's:' .. id end

-- An integer as text (Lua would write one of over 14 digits rounded).
local function int(x) return string.format('%d', x) end

-- Whether `token` ("<epoch> <holder>") is the shard's live lease. The
-- lease key lives only while the lease does (its TTL), and each grant
-- writes its own epoch, which is never granted again: an equal value is
-- the current grant, not lapsed.
local function lease_ok(token) return redis.call('GET', LEASE) == token end

-- Writes a schedule's version and JSON and keeps the indexes right: the
-- due index (due '' for none) and the index of its tenant (only touched
-- when the tenant is new or changed: a commit spares the write).
local function put(key, id, v, due, tenant, json)
  local old = redis.call('HGET', key, 't')
  if old ~= tenant then
    if old then redis.call('ZREM', tenant_key(old), id) end
    redis.call('ZADD', tenant_key(tenant), 0, id)
    redis.call('HSET', key, 'v', v, 't', tenant, 'json', json)
  else
    redis.call('HSET', key, 'v', v, 'json', json)
  end
  if due == '' then
    redis.call('ZREM', DUE, id)
  else
    redis.call('ZADD', DUE, due, id)
  end
end
