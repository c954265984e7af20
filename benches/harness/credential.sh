# Sourced by the bench scripts: a client credential to mint tokens with,
# made through the admin API as a user would. Needs $ADMIN_KEY.

# A string field of a JSON object on stdin (the first with that name).
json_field() { grep -o "\"$1\":\"[^\"]*\"" | head -n1 | cut -d'"' -f4; }

# _bench_post ADMIN_ADDR PATH JSON: an admin API POST as the bench admin.
_bench_post() { curl -sf "http://$1$2" -H "Authorization: Bearer $ADMIN_KEY" -H 'content-type: application/json' -d "$3"; }

# bench_basic ADMIN_ADDR NAME: the `Authorization: Basic` value of a new
# client credential, of a new account holding `orders:read` in a new
# organization NAME.
bench_basic() {
  local org account cred
  org=$(_bench_post "$1" /v1/organizations "{\"name\":\"$2\"}" | json_field id)
  account=$(_bench_post "$1" /v1/service-accounts "{\"organization_id\":\"$org\",\"name\":\"bench\",\"scopes\":[\"orders:read\"],\"create_api_key\":false}" | json_field id)
  cred=$(_bench_post "$1" "/v1/service-accounts/$account/credentials" '{"name":"bench"}')
  printf '%s:%s' "$(echo "$cred" | json_field client_id)" "$(echo "$cred" | json_field client_secret)" | base64 -w0
}

# bench_token PUBLIC_ADDR BASIC AUDIENCE: an access token for AUDIENCE
# (client_credentials). Tries for ~10 s: a replica sharing the store learns
# of a credential made on another from its change feed.
bench_token() {
  local answer
  for _ in $(seq 1 100); do
    if answer=$(curl -sf "http://$1/oauth2/token" -H "Authorization: Basic $2" \
      -d grant_type=client_credentials -d audience="$3"); then
      echo "$answer" | json_field access_token
      return
    fi
    sleep 0.1
  done
  echo "bench_token: no token from $1" >&2
  return 1
}

# bench_token_lua FILE BASIC: a wrk script at FILE that asks the token
# endpoint for a token (client_credentials, client_secret_basic) as BASIC.
bench_token_lua() {
  cat > "$1" <<LUA
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $2"
LUA
}
