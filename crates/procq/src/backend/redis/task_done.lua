-- task_done: acknowledges this consumer's oldest in-flight item.
-- Returns 1 (acknowledged), 2 (late: the item had been requeued after the
-- lease ran out and will be acknowledged by its next consumer) or 0 (too
-- many task_done calls).
-- ARGV: prefix, consumer id, lease ms
local c = ARGV[2]
local inflight = PREFIX .. ':inflight:' .. c
if redis.call('LPOP', inflight) then
  local left = redis.call('HINCRBY', K_META, 'unfinished', -1)
  if left <= 0 then
    if left < 0 then redis.call('HSET', K_META, 'unfinished', 0) end
    redis.call('DEL', K_ZERO)
    redis.call('LPUSH', K_ZERO, '1')
  end
  if redis.call('LLEN', inflight) == 0 then
    redis.call('ZREM', K_LEASES, c)
  else
    redis.call('ZADD', K_LEASES, now_ms() + tonumber(ARGV[3]), c)
  end
  return 1
end
local late = PREFIX .. ':late:' .. c
if tonumber(redis.call('GET', late) or '0') > 0 then
  redis.call('DECR', late)
  return 2
end
return 0
