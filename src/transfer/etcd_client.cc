#include "transfer/etcd_client.h"

#include <boost/json.hpp>

#include "base/json.h"
#include "transfer/base64.h"

namespace crescent::transfer {
namespace json = boost::json;

namespace {

// etcd's gateway prints int64 fields as JSON strings (and omits zeros).
int64_t IntField(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->value().is_string()) {
    try {
      return std::stoll(std::string(it->value().get_string()));
    } catch (const std::exception&) {
      return 0;
    }
  }
  if (it->value().is_int64()) return it->value().get_int64();
  if (it->value().is_uint64()) return static_cast<int64_t>(it->value().get_uint64());
  return 0;
}

const json::object* ObjectField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? v->if_object() : nullptr;
}

int64_t HeaderRevision(const json::object& o) {
  const json::object* h = ObjectField(o, "header");
  return h ? IntField(*h, "revision") : 0;
}

Result<std::string> StringField(const json::object& o, std::string_view key, bool b64) {
  const json::value* v = o.if_contains(key);
  if (!v) return std::string();  // etcd omits empty values
  if (!v->is_string()) return DataLoss("etcd: field '" + std::string(key) + "' is not a string");
  if (!b64) return std::string(v->get_string());
  return Base64Decode(std::string_view(v->get_string()));
}

Result<KeyValue> ParseKv(const json::object& o) {
  KeyValue kv;
  ASSIGN_OR_RETURN(kv.key, StringField(o, "key", true));
  ASSIGN_OR_RETURN(kv.value, StringField(o, "value", true));
  kv.create_revision = IntField(o, "create_revision");
  kv.mod_revision = IntField(o, "mod_revision");
  kv.lease = IntField(o, "lease");
  return kv;
}

Result<json::object> ParseObject(std::string_view text, std::string_view what) {
  ASSIGN_OR_RETURN(json::value v, ParseJson(text, what));
  if (!v.is_object()) return DataLoss(std::string(what) + ": not a JSON object");
  return std::move(v.get_object());
}

// A failed gateway reply: {"error": ..., "message": ..., "code": <gRPC code>}.
Status FromGatewayError(const HttpError& e, std::string_view what) {
  StatusCode code = StatusCode::kInternal;
  std::string message = e.body;
  Result<json::object> o = ParseObject(e.body, what);
  if (o.ok()) {
    switch (IntField(*o, "code")) {
      case 3: code = StatusCode::kInvalidArgument; break;
      case 4: code = StatusCode::kDeadlineExceeded; break;
      case 5: code = StatusCode::kNotFound; break;
      case 8: code = StatusCode::kResourceExhausted; break;
      case 9: code = StatusCode::kFailedPrecondition; break;
      case 14: code = StatusCode::kUnavailable; break;
      default: break;
    }
    Result<std::string> m = StringField(*o, "message", false);
    if (m.ok() && !m->empty()) message = *m;
  }
  return Status(code, std::string(what) + ": " + message);
}

std::string Enc(std::string_view s) { return Base64Encode(s); }

}  // namespace

std::string PrefixRangeEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key
}

Result<std::string> EtcdClient::Call(std::string_view target, std::string_view body) const {
  HttpError err;
  Result<std::string> r = HttpPost(endpoint_, target, body, timeout_ms_, &err);
  if (!r.ok() && err.status != 0) return FromGatewayError(err, "etcd " + std::string(target));
  return r;
}

Result<int64_t> EtcdClient::Put(std::string_view key, std::string_view value, LeaseId lease) const {
  json::object req{{"key", Enc(key)}, {"value", Enc(value)}};
  if (lease != 0) req["lease"] = std::to_string(lease);
  ASSIGN_OR_RETURN(std::string text, Call("/v3/kv/put", json::serialize(req)));
  ASSIGN_OR_RETURN(json::object o, ParseObject(text, "etcd put"));
  return HeaderRevision(o);
}

Result<ListResult> EtcdClient::Range(std::string_view key, std::string_view range_end) const {
  json::object req{{"key", Enc(key)}};
  if (!range_end.empty()) req["range_end"] = Enc(range_end);
  ASSIGN_OR_RETURN(std::string text, Call("/v3/kv/range", json::serialize(req)));
  ASSIGN_OR_RETURN(json::object o, ParseObject(text, "etcd range"));
  ListResult out;
  out.revision = HeaderRevision(o);
  if (const json::value* kvs = o.if_contains("kvs"); kvs && kvs->is_array()) {
    for (const json::value& kv : kvs->get_array()) {
      if (!kv.is_object()) return DataLoss("etcd range: a kv is not an object");
      ASSIGN_OR_RETURN(KeyValue parsed, ParseKv(kv.get_object()));
      out.kvs.push_back(std::move(parsed));
    }
  }
  return out;
}

Result<int64_t> EtcdClient::Delete(std::string_view key) const {
  json::object req{{"key", Enc(key)}};
  ASSIGN_OR_RETURN(std::string text, Call("/v3/kv/deleterange", json::serialize(req)));
  ASSIGN_OR_RETURN(json::object o, ParseObject(text, "etcd delete"));
  return IntField(o, "deleted");
}

namespace {

json::object ModCompare(std::string_view key, int64_t expected) {
  // An absent key has create_revision 0; comparing MOD against 0 is the same.
  return json::object{{"key", Enc(key)},
                      {"target", expected == 0 ? "CREATE" : "MOD"},
                      {"result", "EQUAL"},
                      {expected == 0 ? "create_revision" : "mod_revision", std::to_string(expected)}};
}

Result<EtcdTxnResult> ParseTxn(std::string_view text) {
  ASSIGN_OR_RETURN(json::object o, ParseObject(text, "etcd txn"));
  EtcdTxnResult r;
  const json::value* s = o.if_contains("succeeded");
  r.succeeded = s && s->is_bool() && s->get_bool();
  r.revision = HeaderRevision(o);
  return r;
}

}  // namespace

Result<EtcdTxnResult> EtcdClient::CompareAndPut(std::string_view key, int64_t expected, std::string_view value,
                                                LeaseId lease) const {
  json::object put{{"key", Enc(key)}, {"value", Enc(value)}};
  if (lease != 0) put["lease"] = std::to_string(lease);
  json::object req{{"compare", json::array{ModCompare(key, expected)}},
                   {"success", json::array{json::object{{"request_put", put}}}}};
  ASSIGN_OR_RETURN(std::string text, Call("/v3/kv/txn", json::serialize(req)));
  return ParseTxn(text);
}

Result<EtcdTxnResult> EtcdClient::CompareAndDelete(std::string_view key, int64_t expected) const {
  json::object req{{"compare", json::array{ModCompare(key, expected)}},
                   {"success", json::array{json::object{{"request_delete_range", json::object{{"key", Enc(key)}}}}}}};
  ASSIGN_OR_RETURN(std::string text, Call("/v3/kv/txn", json::serialize(req)));
  return ParseTxn(text);
}

Result<LeaseId> EtcdClient::LeaseGrant(int64_t ttl_s) const {
  json::object req{{"TTL", ttl_s}};
  ASSIGN_OR_RETURN(std::string text, Call("/v3/lease/grant", json::serialize(req)));
  ASSIGN_OR_RETURN(json::object o, ParseObject(text, "etcd lease grant"));
  const LeaseId id = IntField(o, "ID");
  if (id == 0) return Internal("etcd lease grant: no lease ID in " + text);
  return id;
}

Result<int64_t> EtcdClient::LeaseKeepAlive(LeaseId lease) const {
  json::object req{{"ID", std::to_string(lease)}};
  ASSIGN_OR_RETURN(std::string text, Call("/v3/lease/keepalive", json::serialize(req)));
  ASSIGN_OR_RETURN(json::object o, ParseObject(text, "etcd keepalive"));
  // {"result":{"ID":..,"TTL":..}}; a lost lease comes back without a TTL.
  const json::object* r = ObjectField(o, "result");
  const int64_t ttl = r ? IntField(*r, "TTL") : 0;
  if (ttl <= 0) return NotFound("etcd lease " + std::to_string(lease) + " has expired");
  return ttl;
}

Status EtcdClient::LeaseRevoke(LeaseId lease) const {
  json::object req{{"ID", std::to_string(lease)}};
  Result<std::string> r = Call("/v3/lease/revoke", json::serialize(req));
  if (!r.ok() && r.status().code() == StatusCode::kNotFound) return Status::Ok();
  return r.status();
}

Result<std::unique_ptr<HttpStream>> EtcdClient::OpenWatch(std::string_view prefix, int64_t start_revision) const {
  json::object create{{"key", Enc(prefix)}, {"range_end", Enc(PrefixRangeEnd(prefix))}};
  if (start_revision > 0) create["start_revision"] = std::to_string(start_revision);
  json::object req{{"create_request", create}};
  return HttpStream::Open(endpoint_, "/v3/watch", json::serialize(req), timeout_ms_);
}

Result<EtcdWatchMessage> ParseWatchMessage(std::string_view line) {
  ASSIGN_OR_RETURN(json::object o, ParseObject(line, "etcd watch"));
  if (const json::value* err = o.if_contains("error")) {
    return Unavailable("etcd watch: " + (err->is_object() ? json::serialize(*err) : json::serialize(*err)));
  }
  const json::object* r = ObjectField(o, "result");
  if (!r) return DataLoss("etcd watch: no result in " + std::string(line.substr(0, 200)));
  EtcdWatchMessage m;
  m.header_revision = HeaderRevision(*r);
  const json::value* created = r->if_contains("created");
  m.created = created && created->is_bool() && created->get_bool();
  const json::value* canceled = r->if_contains("canceled");
  m.canceled = canceled && canceled->is_bool() && canceled->get_bool();
  m.compact_revision = IntField(*r, "compact_revision");
  if (const json::value* evs = r->if_contains("events"); evs && evs->is_array()) {
    for (const json::value& ev : evs->get_array()) {
      if (!ev.is_object()) return DataLoss("etcd watch: an event is not an object");
      const json::object& e = ev.get_object();
      const json::object* kv = ObjectField(e, "kv");
      if (!kv) return DataLoss("etcd watch: an event without kv");
      WatchEvent out;
      ASSIGN_OR_RETURN(out.kv, ParseKv(*kv));
      Result<std::string> type = StringField(e, "type", false);
      out.type = type.ok() && *type == "DELETE" ? WatchEventType::kDelete : WatchEventType::kPut;
      out.revision = out.kv.mod_revision;
      m.events.push_back(std::move(out));
    }
  }
  return m;
}

}  // namespace crescent::transfer
