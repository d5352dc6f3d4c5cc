-- Settles attempts, fenced by the lease.
-- KEYS: the fixed ones, then held:<c>, lease:<c>, then the job key of each
-- item, in order.
-- ARGV: base, consumer, now, the default max finished and max age ms (where
-- the queue's policy has none); then 6 per item: id,
-- tenant ('' if unknown), attempt JSON, kind (finish|retry|dead), value
-- (state | due ms | reason), result JSON or ''.
-- Returns -1 if the lease lapsed, else the number settled (those still
-- held).
local c, now, keep, age = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if not lease_ok(c) then return -1 end
local HELD = KEYS[FIXED + 1]
local FIRST, PER = 6, 6
local count = (#ARGV - FIRST + 1) / PER
local ids = {}
for i = 0, count - 1 do ids[i + 1] = ARGV[FIRST + i * PER] end
local held = bulk('HMGET', {HELD}, ids)
local mine = {}
for i = 1, count do
  if held[i] then mine[#mine + 1] = i - 1 end
end
if #mine == 0 then return 0 end
local gone = {}
for n, i in ipairs(mine) do gone[n] = ids[i + 1] end
bulk('HDEL', {HELD}, gone)
-- Numbers for the attempts' history fields, and for the retried jobs'
-- new order.
local h0 = seq_take(2 * #mine)
local now_s = int(now)
for n, i in ipairs(mine) do
  local a = FIRST + i * PER
  local id, t, att, kind, value, result = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3],
    ARGV[a + 4], ARGV[a + 5]
  local jkey = KEYS[FIXED + 3 + i]
  if held_counted(held[i + 1]) then
    if t == '' then
      local f = redis.call('HMGET', jkey, 'p', 't')
      t = f[2] or f[1]
    end
    if t then stop(t) end
  end
  local hist = 'h' .. (h0 + n)
  if kind == 'finish' then
    if value == 'succeeded' and result ~= '' then
      redis.call('HSET', jkey, 's', value, 'f', now_s, hist, att, 'r', result)
    else
      local fields = {'s', value, 'f', now_s, hist, att}
      if result ~= '' then
        fields[#fields + 1] = 'r'
        fields[#fields + 1] = result
      end
      if value ~= 'succeeded' then
        local reason = cjson.decode(att).outcome.error
        if type(reason) == 'string' then
          fields[#fields + 1] = 'rs'
          fields[#fields + 1] = reason
        end
      end
      redis.call('HSET', jkey, unpack(fields))
    end
    done_add(value, id, now_s)
  elseif kind == 'retry' then
    local f = redis.call('HMGET', jkey, 'p', 't', 'sc', 'a', 'j')
    if t == '' then t = f[2] or f[1] end
    local sc = score(prio_of(f[3]), h0 + #mine + n)
    local due = tonumber(value)
    local next_attempt = (tonumber(f[4]) or 1) + 1
    if due > now then
      redis.call('HSET', jkey, 's', 'scheduled', 'a', next_attempt, 'sc', sc, 'due', int(due), hist, att)
      later_add(id, f[1], due)
    else
      redis.call('HSET', jkey, 'a', next_attempt, 'sc', sc, 'due', now_s, hist, att)
      ready_add(id, f[1], t, sc, next_attempt, now_s, f[5])
    end
  else
    bury(jkey, id, value, now, hist, att)
  end
end
done_flush()
later_flush()
buried_flush()
local back = stopped_flush()
if ready_flush() > 0 then back = true end
keep, age = policy(keep, age, 0)
retain(keep, age, now)
if back then handoff(now) end
return #mine
