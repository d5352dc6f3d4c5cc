-- Claims up to max jobs for a consumer, fenced by its lease.
-- KEYS: the fixed ones, then held:<c>, lease:<c>, handoff:<c>.
-- ARGV: base, consumer, max, now, tenant cap (0: none), '1' if the consumer
-- may be registered as waiting (its last claim found nothing), how long the
-- claim waits (ms; its end is measured on Redis's clock, server_ms()).
-- Returns -1 if the lease lapsed, else {next due ms or -1, 1 if the
-- consumer now waits, jobs as take() packs them}: first what was handed to
-- it since it registered, then what it claims. A claim that finds nothing
-- and may still wait registers the consumer as waiting until the end of
-- its wait, so that work made claimable meanwhile is handed to it
-- (take.lua, handoff()); its blocked read of the hand-off list then wakes
-- with the jobs. The claim after the wait ends takes what was handed too
-- late for that read.
local c, max, now, cap = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local wait_ms = tonumber(ARGV[7])
if not lease_ok(c) then return -1 end
local HANDOFF = KEYS[FIXED + 3]
if ARGV[6] == '1' then
  redis.call('ZREM', WAITING, c)
  redis.call('HDEL', WANTS, c)
end
local rows = redis.call('LPOP', HANDOFF, max) or {}
local promoted = promote(now)
if #rows < max then
  for _, row in ipairs(take(c, max - #rows, cap, now)) do rows[#rows + 1] = row end
end
-- Promoted jobs this claim left go to whoever waits.
if promoted > 0 then handoff(now) end
if #rows > 0 or wait_ms <= 0 then return {-1, 0, rows} end
redis.call('ZADD', WAITING, server_ms() + wait_ms, c)
redis.call('HSET', WANTS, c, max .. ' ' .. cap)
local next_due = redis.call('ZRANGE', SCHED, 0, 0, 'WITHSCORES')[2] or -1
return {next_due, 1, rows}
