-- shutdown: shuts the queue down for every client (see common.lua): sets the
-- flag (1, or 2 if immediate; never lowered) and wakes every blocked getter
-- and putter. Immediate, it also drops the items queued (a joinable queue's
-- retry list included) and counts them done, so join returns once the
-- items in flight are acknowledged. Items in flight stay with their
-- consumers, who still owe their task_done. Idempotent; an immediate
-- shutdown after a plain one still drops what is left.
-- ARGV: prefix, immediate (0/1)
-- Returns nil if the queue is missing, else the number of items dropped.
if redis.call('HEXISTS', K_META, 'kind') == 0 then return nil end
local level = 1
if ARGV[2] == '1' then level = 2 end
local was = tonumber(redis.call('HGET', K_META, 'shutdown') or '0')
if level > was then redis.call('HSET', K_META, 'shutdown', level) end
local n = 0
if math.max(level, was) == 2 then
  n = queued()
  if n > 0 then
    redis.call('DEL', K_ITEMS, K_RETRY)
    if redis.call('HGET', K_META, 'kind') == '2' then finish(n) end
  end
end
-- Every waiter wakes: those on the shutdown tokens now, a joiner through
-- finish above.
redis.call('DEL', K_SHUT)
signal(K_SHUT, TOKEN_CAP)
return n
