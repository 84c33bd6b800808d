#!/bin/bash
# The app's certificate from an ACME server: certbot certonly --webroot (our configs stay
# ours; certbot's --nginx/--apache installers would edit files the next deploy overwrites).
# Issued when missing, re-issued when the names changed, else left alone; certbot's timer
# renews it and the deploy hook reloads the front server gracefully. A private ACME server's
# CA (CA_FILE, may be empty) is trusted by this run and by the timer's runs.
# Usage: acme_issue.sh INIT CERT_NAME WEBROOT EMAIL DIRECTORY CA_FILE RELOAD_COMMAND NAME...
# RELOAD_COMMAND: how the init reloads the front server (ops.targets.inits), certbot's deploy hook.
set -eu
# flask-ops: include service.sh
cert_name=$1 webroot=$2 email=$3 directory=$4 ca_file=$5 reload_hook=$6
shift 6
command -v certbot >/dev/null || { echo "certbot is not installed: run provision (tls.acme)" >&2; exit 1; }
mkdir -p "$webroot/.well-known/acme-challenge"
chmod 755 "$webroot" "$webroot/.well-known" "$webroot/.well-known/acme-challenge"
if [ -n "$ca_file" ]; then
  bundle=/etc/flask-ops/acme-ca-bundle.pem
  cat /etc/ssl/certs/ca-certificates.crt /etc/flask-ops/*/acme-ca.pem > "$bundle.new"
  mv -f "$bundle.new" "$bundle"
  dropin=/etc/systemd/system/certbot.service.d/flask-ops.conf
  want=$(printf '[Service]\nEnvironment=REQUESTS_CA_BUNDLE=%s\n' "$bundle")
  # (systemd's timer renews; elsewhere certbot's cron job, which reads no drop-in)
  if [ "$svc_init" = systemd ] && [ "$(cat "$dropin" 2>/dev/null)" != "$want" ]; then
    mkdir -p "$(dirname "$dropin")"
    printf '%s\n' "$want" > "$dropin"
    systemctl daemon-reload
  fi
  export REQUESTS_CA_BUNDLE=$bundle
fi
domains=()
for name in "$@"; do domains+=(-d "$name"); done
issue() {
  certbot certonly --non-interactive --agree-tos --no-eff-email --email "$email" \
    --server "$directory" --cert-name "$cert_name" --webroot -w "$webroot" "${domains[@]}" \
    --keep-until-expiring --deploy-hook "$reload_hook" 2>&1
}
if ! out=$(issue); then
  # The ACME server no longer knows this host's account (a test CA restarted, an account
  # deactivated): certbot 2.x then fails with an unrelated AttributeError. Register anew once.
  if tail -n 300 /var/log/letsencrypt/letsencrypt.log 2>/dev/null | grep -q accountDoesNotExist; then
    rm -rf "/etc/letsencrypt/accounts/${directory#https://}"
    echo "the ACME server had forgotten this host's account: registered a new one"
    out=$(issue) && ok=1 || ok=
  fi
  if [ -z "${ok:-}" ]; then
    printf '%s\n' "$out" | grep -v '^Saving debug log' | tail -n 12 >&2
    exit 1
  fi
fi
printf '%s\n' "$out" | grep -E '^(Successfully|Certificate not yet due|Renewing)' || true
