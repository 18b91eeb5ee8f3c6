package redis

import goredis "github.com/redis/go-redis/v9"

// The steps that must be atomic run as Lua scripts: Redis runs a script
// alone, so no other node's command comes between its reads and writes.
// Times inside them are Redis's own (TIME), the one clock the cluster
// judges leases by. The scripts name some keys they build from the prefix
// and a node's name rather than in KEYS: fine on one Redis, and what Redis
// Cluster would need hash tags for (docs/cluster.md).

// claimScript writes a session and makes this node its owner, and tells the
// previous owner, if another node, to end its session as replaced. Mode
// "join" always wins (the newest HELLO wins); "republish", after the store
// came back, keeps a newer session another node holds and returns "lost".
//
//	KEYS: sessions, owned:{me}, events
//	ARGV: name, record, me, id, mode, connected_us, maxlen, prefix, event fields…
//	returns {"claimed"|"same"|"lost", previous node, stream id or previous id}
var claimScript = goredis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1])
local prevNode, prevID = '', ''
if old then
  local o = cjson.decode(old)
  prevNode, prevID = o.node, o.id
  if ARGV[5] == 'republish' then
    if o.id == ARGV[4] and o.node == ARGV[3] then
      redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
      redis.call('SADD', KEYS[2], ARGV[1])
      return {'same', '', ''}
    end
    if o.node ~= ARGV[3] and tonumber(o.connected_us) > tonumber(ARGV[6]) then
      return {'lost', o.node, o.id}
    end
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
if prevNode ~= '' and prevNode ~= ARGV[3] then
  redis.call('SREM', ARGV[8] .. 'owned:' .. prevNode, ARGV[1])
  redis.call('XADD', ARGV[8] .. 'cmd:' .. prevNode, 'MAXLEN', '~', 1000, '*',
    'op', 'replace', 'name', ARGV[1], 'id', prevID, 'detail', 'a new session on node ' .. ARGV[3] .. ' took the name')
end
local xid = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', unpack(ARGV, 9))
return {'claimed', prevNode, xid}
`)

// updateScript writes a session's new state and its event, if the session
// is still the owner of its name.
//
//	KEYS: sessions, events
//	ARGV: name, id, record, maxlen, event fields…
var updateScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or cjson.decode(cur).id ~= ARGV[2] then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
`)

// endScript removes a session that ended, only if it still owns its name
// (a replaced session must not remove its successor), and adds its event:
// always for replaced, the one event of a replacement; for the others only
// if the session was still in the view (a session a reaper already
// declared dead is not declared gone twice).
//
//	KEYS: sessions, owned:{me}, events, beats
//	ARGV: name, id, kind, maxlen, event fields…
var endScript = goredis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local mine = cur and cjson.decode(cur).id == ARGV[2]
if mine then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[4], ARGV[1])
end
if mine or ARGV[3] == 'replaced' then
  return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 5))
end
return false
`)

// registerScript (re)registers a node: its entry in the nodes hash, since
// and last_seen now by Redis's clock, and its lease, which holds the
// node's instance (random per process). It registers nothing, and fails
// with "NODEINUSE <pttl>", while another instance's lease of the name is
// live: two processes given one name must not take each other's sessions.
//
//	KEYS: nodes, lease:{me}
//	ARGV: me, node JSON, ttl ms, instance
var registerScript = goredis.NewScript(`
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[4] then
  return redis.error_reply('NODEINUSE ' .. redis.call('PTTL', KEYS[2]))
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local info = cjson.decode(ARGV[2])
info.since = now
info.last_seen = now
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(info))
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
return now
`)

// renewScript renews a node's lease and last_seen. It returns 0, renewing
// nothing, if the node is missing from the nodes hash (a reaper removed it,
// or Redis restarted empty) or the epoch is gone: the node must register
// and republish; -1 if another instance holds the name's lease (this one
// lapsed, and another process of the name registered).
//
//	KEYS: nodes, lease:{me}, epoch
//	ARGV: me, sessions, ttl ms, instance
var renewScript = goredis.NewScript(`
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[4] then return -1 end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur or redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
local t = redis.call('TIME')
local info = cjson.decode(cur)
info.last_seen = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
info.sessions = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(info))
redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[3])
return 1
`)

// reapScript removes every node whose lease lapsed, and declares each of
// its sessions dead with reason node_lost. It runs alone, and removes the
// node from the nodes hash as it goes, so however many survivors run it,
// one does the work: exactly one event per session. A reaper reaps only
// once its own registration is a full ttl old by Redis's clock, so that
// after an outage every live node has had a ttl to renew first. It returns
// the number of sessions declared dead, or -1 if the reaper itself is not
// registered.
//
//	KEYS: nodes, events, sessions, beats
//	ARGV: me, ttl ms, maxlen, prefix
var reapScript = goredis.NewScript(`
local mine = redis.call('HGET', KEYS[1], ARGV[1])
if not mine then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now - cjson.decode(mine).since < tonumber(ARGV[2]) then return 0 end
local us = t[1] .. string.format('%06d', tonumber(t[2]))
local n = 0
for _, node in ipairs(redis.call('HKEYS', KEYS[1])) do
  if node ~= ARGV[1] and redis.call('EXISTS', ARGV[4] .. 'lease:' .. node) == 0 then
    redis.call('HDEL', KEYS[1], node)
    local owned = ARGV[4] .. 'owned:' .. node
    for _, name in ipairs(redis.call('SMEMBERS', owned)) do
      local v = redis.call('HGET', KEYS[3], name)
      if v and cjson.decode(v).node == node then
        redis.call('HDEL', KEYS[3], name)
        redis.call('HDEL', KEYS[4], name)
        redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*',
          'k', 'dead', 'r', 'node_lost', 'd', 'node ' .. node .. ' lost its lease', 'n', ARGV[1], 't', us, 's', v)
        n = n + 1
      end
    end
    redis.call('DEL', owned, ARGV[4] .. 'cmd:' .. node)
  end
end
return n
`)

// scripts are loaded into Redis whenever the node (re)connects, so that
// pipelines can run them by their hash.
var scripts = []*goredis.Script{claimScript, updateScript, endScript, registerScript, renewScript, reapScript}
