-- get: takes up to max items from the head. For a joinable queue they move,
-- in the same atomic step, to this consumer's in-flight list and its lease
-- is (re)set; task_done acknowledges them. Expired leases are reaped first.
-- Returns {1, next_expiry, items...} or {0, next_expiry} when empty.
-- ARGV: prefix, max, joinable (0/1), consumer id, lease ms, maxsize
local now = now_ms()
reap(now)
local joinable = ARGV[3] == '1'
local c = ARGV[4]
local inflight = PREFIX .. ':inflight:' .. c
local items = redis.call('LPOP', K_ITEMS, tonumber(ARGV[2]))
if not items then
  -- Every avail token is stale (the queue is empty): drop them so the
  -- caller sleeps until the next put signals.
  redis.call('DEL', K_AVAIL)
  if joinable and redis.call('EXISTS', inflight) == 1 then
    redis.call('ZADD', K_LEASES, now + tonumber(ARGV[5]), c)
  end
  return {0, next_expiry(now)}
end
if joinable then
  redis.call('RPUSH', inflight, unpack(items))
  redis.call('ZADD', K_LEASES, now + tonumber(ARGV[5]), c)
end
if tonumber(ARGV[6]) > 0 then signal(K_SPACE, #items) end
local out = {1, next_expiry(now)}
for i = 1, #items do out[i + 2] = items[i] end
return out
