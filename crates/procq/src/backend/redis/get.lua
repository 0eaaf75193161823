-- get: takes up to max items from the head (a joinable queue's retry list
-- first). On a plain queue they move to the caller's landing list ARGV[4]
-- (a fresh key for every move, see landing.rs), which expires after ARGV[5]
-- ms, and it returns {1, next_expiry, count}; the client reads the list
-- with LRANGE in the same round trip, or later if the reply was lost. The
-- caller's spent landing lists (ARGV[9..], items handed out) are deleted
-- first. A move run twice answers with the same items. {0, next_expiry}
-- when empty, {2, -1} when empty and shut down (the end of the stream:
-- what was put before the shutdown is handed out first).
-- After an immediate shutdown nothing queued is handed out: whatever is
-- found (put back by a reap or a cancelled get since) is dropped, and on a
-- joinable queue counted done.
--
-- On a joinable queue they move, in the same atomic step, to the list of
-- this request, <prefix>:held:<consumer>:<seq>, and the consumer's lease is
-- (re)set; task_done acknowledges them by (seq, index). Returns {1, -1,
-- count}, with the items appended ({1, -1, count, {items}}) if ARGV[8] is
-- 1; else the client reads that list with LRANGE right after, in the same
-- round trip (see common.lua). Expired leases are reaped first.
-- ARGV: prefix, max, joinable (0/1), consumer id, lease ms, maxsize,
--       request sequence number, inline (0/1)
--
-- Idempotency: a request whose reply was lost is sent again with the same
-- number (by the handle's next get, or by a retry) and, while its list is
-- held, answered with the same items, so an item is never taken without
-- its consumer hearing of it. (If they were reaped since, the request is
-- served as a new one.)
local now = now_ms()
reap(now)
local max = tonumber(ARGV[2])
local c = ARGV[4]
local shut = shut_state()
-- Drops what is queued after an immediate shutdown; returns {2, -1}.
local function dropped()
  local n = queued()
  if n > 0 then
    redis.call('DEL', K_ITEMS, K_RETRY)
    if ARGV[3] == '1' then finish(n) end
  end
  return {2, -1}
end
if ARGV[3] ~= '1' then
  local landing = ARGV[4]
  if #ARGV >= 9 then redis.call('DEL', unpack(ARGV, 9, #ARGV)) end
  local n = redis.call('LLEN', landing)
  -- This move ran before (a retry): the same items.
  if n > 0 then return {1, -1, n} end
  if shut == 2 then return dropped() end
  n = redis.call('LLEN', K_ITEMS)
  if n == 0 then
    if shut > 0 then return {2, -1} end
    -- Every avail token is stale (the queue is empty): drop them so the
    -- caller sleeps until the next put signals.
    redis.call('DEL', K_AVAIL)
    return {0, next_expiry(now)}
  end
  -- Moved in C, never through Lua (see the joinable case below).
  if n <= max then
    redis.call('RENAME', K_ITEMS, landing)
  else
    n = redis.call('SORT', K_ITEMS, 'BY', 'nosort', 'LIMIT', 0, max, 'STORE', landing)
    redis.call('LTRIM', K_ITEMS, n, -1)
  end
  redis.call('PEXPIRE', landing, ARGV[5])
  if tonumber(ARGV[6]) > 0 then signal(K_SPACE, n) end
  return {1, next_expiry(now), n}
end

local seq = ARGV[7]
local k_reqs, held_, acks_, dmap_ = consumer_keys(c)
local held = held_ .. seq
local lease_until = now + tonumber(ARGV[5])
-- (The hint is only used by a caller that found nothing: -1 otherwise.)
local function reply(count)
  redis.call('ZADD', K_LEASES, lease_until, c)
  if ARGV[8] == '1' then return {1, -1, count, redis.call('LRANGE', held, 0, -1)} end
  return {1, -1, count}
end
local count = redis.call('LLEN', held)
if count > 0 then
  -- A request seen before: the same items.
  return reply(count)
end
if shut == 2 then return dropped() end
-- Retried items first: stored as "<d>:<payload>", they are unwrapped (the
-- only per-item Lua work, on this rare path) and their delivery counts
-- kept in the request's dmap.
local again = redis.call('LPOP', K_RETRY, max)
if again then
  local items, pairs_ = {}, {}
  for i, env in ipairs(again) do
    local d, at = string.match(env, '^(%d+):()')
    items[i] = string.sub(env, at)
    pairs_[#pairs_ + 1] = i - 1
    pairs_[#pairs_ + 1] = d
  end
  redis.call('HSET', dmap_ .. seq, unpack(pairs_))
  push('RPUSH', held, items)
  count = #items
end
if count < max then
  -- Fresh items, moved in C: the whole queue if it fits (RENAME is O(1)),
  -- else a copy of its head and a trim.
  local want = max - count
  if count == 0 then
    local n = redis.call('LLEN', K_ITEMS)
    if n > 0 and n <= want then
      redis.call('RENAME', K_ITEMS, held)
      count = n
    elseif n > 0 then
      count = redis.call('SORT', K_ITEMS, 'BY', 'nosort', 'LIMIT', 0, want, 'STORE', held)
      redis.call('LTRIM', K_ITEMS, count, -1)
    end
  else
    local fresh = redis.call('LPOP', K_ITEMS, want)
    if fresh then
      redis.call('RPUSH', held, unpack(fresh))
      count = count + #fresh
    end
  end
end
if count == 0 then
  if redis.call('EXISTS', k_reqs) == 1 then redis.call('ZADD', K_LEASES, lease_until, c) end
  if shut > 0 then return {2, -1} end
  redis.call('DEL', K_AVAIL)
  return {0, next_expiry(now)}
end
redis.call('SADD', k_reqs, seq)
redis.call('HINCRBY', K_META, 'delivered', count)
if tonumber(ARGV[6]) > 0 then signal(K_SPACE, count) end
return reply(count)
