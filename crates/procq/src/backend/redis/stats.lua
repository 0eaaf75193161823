-- stats: the queue's counters, after reaping expired leases (so that what
-- it shows is what the next get would find: a dead consumer's items back
-- in the queue, or moved to the dead-letter queue). A missing queue is
-- left missing: returns nil.
-- ARGV: prefix
if redis.call('HEXISTS', K_META, 'kind') == 0 then return nil end
reap(now_ms())
return {
  redis.call('HMGET', K_META, 'kind', 'fingerprint', 'maxsize', 'unfinished',
    'delivered', 'redelivered', 'dead_lettered', 'max_deliveries', 'shutdown'),
  queued(),
  redis.call('ZCARD', K_LEASES),
}
