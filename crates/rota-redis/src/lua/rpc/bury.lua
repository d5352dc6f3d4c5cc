-- Dead-letter one delivery, fenced by the lease.
-- KEYS[1] request stream, KEYS[2] lease key, KEYS[3] dead-letter stream
-- ARGV[1] group, ARGV[2] id, ARGV[3] reason, ARGV[4] now (ms)
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local m, a, note = entry(KEYS[1], ARGV[2])
if m then
  local reason = ARGV[3]
  if note then
    reason = reason .. '; ' .. note
  end
  bury(KEYS[3], ARGV[2], m, a, reason, ARGV[4])
end
settle(KEYS[1], ARGV[1], ARGV[2])
return 1
