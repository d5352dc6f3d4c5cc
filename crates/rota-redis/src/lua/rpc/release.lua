-- Give deliveries back to the queue at once, fenced by the lease.
-- KEYS[1] request stream, KEYS[2] lease key
-- ARGV[1] group, ARGV[2] '1' if the handler started (attempt + 1), ARGV[3..] ids
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
local bump = 0
if ARGV[2] == '1' then
  bump = 1
end
local n = 0
for i = 3, #ARGV do
  local m, a = entry(KEYS[1], ARGV[i])
  if m then
    redis.call('XADD', KEYS[1], '*', 'm', m, 'a', a + bump)
    n = n + 1
  end
  settle(KEYS[1], ARGV[1], ARGV[i])
end
return n
