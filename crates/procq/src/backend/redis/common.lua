-- procq on Redis: helpers shared by every script (the Rust side prepends this
-- file to each of them). All scripts take the same eight KEYS and the
-- queue's key prefix as ARGV[1]; per-consumer and per-producer keys (and the
-- dead-letter queue's keys) are derived from the prefix, which carries the
-- queue's hash tag, so every key a script touches is in the same slot.
--
-- A joinable queue (layout version 2) keeps fresh items as they are in
-- <prefix>:items, and items put back after a lease ran out in
-- <prefix>:retry as "<d>:<payload>" (d = deliveries so far); get takes the
-- retry list first. Moving an item through Lua costs about a microsecond
-- per item and pass, and each redis.call a few more, so fresh items never
-- pass through Lua: get moves a batch into a list of the request's own
-- (RENAME when it takes the whole queue, else SORT ... BY nosort LIMIT ...
-- STORE and LTRIM), and the client reads it with a native LRANGE in the
-- same round trip. A consumer c (one per handle and process) holds:
--   <prefix>:held:<c>:<seq>  the items its get request number <seq> took;
--   <prefix>:reqs:<c>        the set of those request numbers;
--   <prefix>:acks:<c>:<seq>  bitmap of that request's items acknowledged
--                            one by one (absent while none is, and when the
--                            whole request is acknowledged at once);
--   <prefix>:dmap:<c>:<seq>  hash: index -> earlier deliveries, for the
--                            items of the request that came from the retry
--                            list.
-- An item is named by (request number, index). Request numbers never come
-- back for new items (a number is sent again only for the same request,
-- after a lost reply), so an acknowledgement naming a request that is no
-- longer held is late: it never touches another item.
--
-- Shutdown (Queue::shutdown): the field 'shutdown' of the meta hash, 1 once
-- shut down, 2 once shut down immediately, never cleared. Every script
-- that puts or takes reads it in the same atomic step (a put racing a
-- shutdown is in before it or refused). Waiting getters and putters block
-- on <prefix>:shut as well as on their own token list: the shutdown fills
-- it with TOKEN_CAP tokens, which wakes every blocked client at once, and
-- every script that sees the flag tops it up again (shut_state), so a
-- client that blocks later, or one woken whose token was used, returns at
-- once too.
local K_ITEMS, K_META, K_AVAIL, K_SPACE, K_LEASES, K_ZERO, K_RETRY, K_SHUT =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local PREFIX = ARGV[1]
-- Wake-up token lists never grow past this: a token only says "look again".
local TOKEN_CAP = 1024

-- The server's clock in milliseconds, so that every client agrees on
-- lease expiry whatever its own clock says.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Tops a token list (waiters block on it with BLPOP) up to n tokens, at
-- most TOKEN_CAP: n items can wake n waiters, and tokens already there
-- (stale ones only cost a spurious wake-up) are not pushed again, so a
-- queue whose consumers keep up costs no token traffic.
local function signal(key, n)
  local want = math.min(n, TOKEN_CAP) - redis.call('LLEN', key)
  if want > 0 then
    local ones = {}
    for i = 1, want do ones[i] = '1' end
    redis.call('LPUSH', key, unpack(ones))
  end
end

-- Pushes a list of values to a list in chunks (Lua's argument stack holds
-- about 8000 values): RPUSH appends in order; LPUSH puts the last first.
local function push(cmd, key, xs)
  for i = 1, #xs, 1000 do
    redis.call(cmd, key, unpack(xs, i, math.min(i + 999, #xs)))
  end
end

-- The queue's shutdown state: 0 open, 1 shut down, 2 shut down
-- immediately. When shut down, tops the shutdown tokens up (see above).
local function shut_state()
  local s = tonumber(redis.call('HGET', K_META, 'shutdown') or '0')
  if s > 0 then signal(K_SHUT, TOKEN_CAP) end
  return s
end

-- Items waiting in the queue (a joinable queue's retry list included).
local function queued()
  return redis.call('LLEN', K_ITEMS) + redis.call('LLEN', K_RETRY)
end

-- Subtracts n finished tasks; the last one wakes the joiners.
local function finish(n)
  if n <= 0 then return end
  local left = redis.call('HINCRBY', K_META, 'unfinished', -n)
  if left <= 0 then
    if left < 0 then redis.call('HSET', K_META, 'unfinished', 0) end
    redis.call('DEL', K_ZERO)
    redis.call('LPUSH', K_ZERO, '1')
  end
end

-- Key names of consumer c: its set of held requests, and the prefixes of
-- its per-request keys (held list, acknowledgement bitmap, delivery map).
local function consumer_keys(c)
  local p = PREFIX .. ':'
  return p .. 'reqs:' .. c, p .. 'held:' .. c .. ':', p .. 'acks:' .. c .. ':',
    p .. 'dmap:' .. c .. ':'
end

-- Moves payloads to this queue's dead-letter queue <name>.dead (created as
-- an ordinary queue of the same item type if missing) and counts them done.
local function dead_letter(payloads)
  local dp = PREFIX .. '.dead'
  local dmeta = dp .. ':meta'
  if redis.call('HEXISTS', dmeta, 'kind') == 0 then
    redis.call('HSET', dmeta, 'kind', '1', 'maxsize', 0, 'version', '1',
      'fingerprint', redis.call('HGET', K_META, 'fingerprint') or '0')
    redis.call('HSETNX', dmeta, 'unfinished', 0)
  end
  local kind = redis.call('HGET', dmeta, 'kind')
  push('RPUSH', dp .. ':items', payloads)
  if kind == '2' then redis.call('HINCRBY', dmeta, 'unfinished', #payloads) end
  if kind == '2' or tonumber(redis.call('HGET', dmeta, 'maxsize') or '0') > 0 then
    signal(dp .. ':avail', #payloads)
  end
  redis.call('HINCRBY', K_META, 'dead_lettered', #payloads)
  finish(#payloads)
end

-- Returns the unacknowledged items of every consumer whose lease has run
-- out: each goes back to the head of the queue (the retry list), in
-- delivery order, with its delivery count raised, or, once delivered
-- max_deliveries times, to the dead-letter queue. After an immediate
-- shutdown they are dropped instead and counted done, as the shutdown
-- dropped the items then queued (so join returns). Its state goes, so its
-- late acknowledgements name a dead incarnation and count nothing (the
-- items' next owners acknowledge them).
local function reap(now)
  local dead = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, 64)
  if #dead == 0 then return end
  local maxd = tonumber(redis.call('HGET', K_META, 'max_deliveries') or '0')
  local dropping = redis.call('HGET', K_META, 'shutdown') == '2'
  for _, c in ipairs(dead) do
    local k_reqs, held_, acks_, dmap_ = consumer_keys(c)
    local seqs = redis.call('SMEMBERS', k_reqs)
    table.sort(seqs, function(a, b) return tonumber(a) < tonumber(b) end)
    local back, gone, dropped = {}, {}, 0
    for _, seq in ipairs(seqs) do
      local items = redis.call('LRANGE', held_ .. seq, 0, -1)
      local bits = redis.call('EXISTS', acks_ .. seq) == 1
      local dmap = {}
      local flat = redis.call('HGETALL', dmap_ .. seq)
      for i = 1, #flat, 2 do dmap[tonumber(flat[i])] = tonumber(flat[i + 1]) end
      for i = 1, #items do
        if not (bits and redis.call('GETBIT', acks_ .. seq, i - 1) == 1) then
          local d = (dmap[i - 1] or 0) + 1
          if dropping then
            dropped = dropped + 1
          elseif maxd > 0 and d >= maxd then
            gone[#gone + 1] = items[i]
          else
            back[#back + 1] = d .. ':' .. items[i]
          end
        end
      end
      redis.call('DEL', held_ .. seq, acks_ .. seq, dmap_ .. seq)
    end
    finish(dropped)
    if #back > 0 then
      local rev = {}
      for i = #back, 1, -1 do rev[#rev + 1] = back[i] end
      push('LPUSH', K_RETRY, rev)
      redis.call('HINCRBY', K_META, 'redelivered', #back)
      signal(K_AVAIL, #back)
    end
    if #gone > 0 then dead_letter(gone) end
    redis.call('DEL', k_reqs)
    redis.call('ZREM', K_LEASES, c)
  end
end

-- Milliseconds until the earliest lease runs out, or -1 if none is held:
-- waiters never sleep past it, so a dead consumer's items come back on time.
local function next_expiry(now)
  local first = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
  if #first == 0 then return -1 end
  return math.max(0, tonumber(first[2]) - now)
end
