-- Shared by the job scripts (prepended to each). Every key of a queue
-- shares the hash tag of KEYS[1], the queue's base: "<prefix>:{j:<queue>}:".
local base = KEYS[1]
local function k(suffix) return base .. suffix end
local function jk(id) return base .. 'job:' .. id end

-- Priority is clamped so that the ready score (priority, then order)
-- stays exact in a double.
local function score(prio, seq)
  prio = math.max(-4000, math.min(4000, tonumber(prio) or 0))
  return -prio * 1e12 + tonumber(seq)
end

local function hincr(key, field, by)
  local n = redis.call('HINCRBY', key, field, by)
  if n <= 0 then redis.call('HDEL', key, field) end
end

-- Makes a job ready in its partition; the partition joins the ring.
local function push_ready(id, part, prio, seq)
  local ready = k('ready:' .. part)
  redis.call('ZADD', ready, score(prio, seq), id)
  if redis.call('ZCARD', ready) == 1 then
    redis.call('RPUSH', k('ring'), part)
  end
  redis.call('HSET', jk(id), 's', 'queued')
end

local function schedule(id, part, due)
  redis.call('ZADD', k('sched'), due, id)
  redis.call('HINCRBY', k('psched'), part, 1)
  redis.call('HSET', jk(id), 's', 'scheduled', 'due', due)
end

-- Appends an attempt (JSON text) to a job's history, a list beside it.
local function record_attempt(id, json)
  redis.call('RPUSH', jk(id) .. ':h', json)
end

-- A holder is "<name>#<epoch>" for a named lease: the history names the
-- worker by its lease name.
local function attempt_json(attempt, worker, started, finished, outcome)
  worker = string.match(worker, '^[^#]*')
  return string.format(
    '{"attempt":%d,"worker":"%s","started_at_ms":%d,"finished_at_ms":%d,"outcome":{"outcome":"%s"}}',
    attempt, worker, started, finished, outcome)
end

-- Stops counting a job as running (tenant cap, partition counts).
local function stop_running(id)
  local f = redis.call('HMGET', jk(id), 't', 'p')
  if f[1] then hincr(k('running'), f[1], -1) end
  if f[2] then hincr(k('prun'), f[2], -1) end
end

local function finish(id, state, reason, now)
  redis.call('HSET', jk(id), 's', state, 'f', now)
  if reason and reason ~= '' then redis.call('HSET', jk(id), 'rs', reason) end
  redis.call('ZADD', k('finished'), now, id)
  redis.call('HINCRBY', k('fin'), state, 1)
end

local function bury(id, reason, now)
  redis.call('HSET', jk(id), 's', 'dead', 'f', now, 'rs', reason)
  redis.call('ZADD', k('dead'), redis.call('INCR', k('seq')), id)
end

-- Deletes a job and frees its idempotency key; with `counted`, also takes
-- it off the finished counts.
local function forget(id, counted)
  local f = redis.call('HMGET', jk(id), 'k', 's')
  local key, state = f[1], f[2]
  if counted and state then hincr(k('fin'), state, -1) end
  if key and key ~= '' and redis.call('HGET', k('keys'), key) == id then
    redis.call('HDEL', k('keys'), key)
  end
  redis.call('DEL', jk(id), jk(id) .. ':h')
end

local function wake(n)
  if n > 0 then
    local tokens = {}
    for i = 1, math.min(n, 64) do tokens[i] = '1' end
    redis.call('LPUSH', k('wake'), unpack(tokens))
    redis.call('LTRIM', k('wake'), 0, 255)
  end
end

local function lease_ok(consumer)
  return redis.call('EXISTS', k('lease:' .. consumer)) == 1
end
