-- Put dead letters back on the queue with a fresh attempt count.
-- KEYS[1] request stream, KEYS[2] dead-letter stream
-- ARGV[1] the dead letter's id, or '' for all of them
local n = 0
local function back(e)
  local fields = e[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'm' then
      redis.call('XADD', KEYS[1], '*', 'm', fields[i + 1])
      n = n + 1
    end
  end
  redis.call('XDEL', KEYS[2], e[1])
end
if ARGV[1] ~= '' then
  for _, e in ipairs(redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])) do
    back(e)
  end
else
  while true do
    local batch = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 500)
    if #batch == 0 then
      break
    end
    for _, e in ipairs(batch) do
      back(e)
    end
  end
end
return n
