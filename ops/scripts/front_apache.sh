#!/bin/bash
# Apache serves port 80 (and 443): the stock site off, its modules on, nginx off, Apache
# enabled and running (restarted when a module changed: a reload does not load modules).
# Usage: front_apache.sh INIT
set -eu
# flask-ops: include service.sh
changed=
[ ! -e /etc/apache2/sites-enabled/000-default.conf ] || {
  a2dissite -q 000-default
  changed=1
  echo 'changed: disabled the stock apache site'
}
# ssl, http2, rewrite: HTTPS (tls), and the catch-all's 443 virtual host on every host.
# unique_id: the request id of each request (X-Request-ID, the access log).
[ -e /etc/ssl/private/ssl-cert-snakeoil.key ] || {
  make-ssl-cert generate-default-snakeoil
  echo 'changed: made the self-signed certificate of the default TLS site'
}
for m in wsgi headers ssl http2 rewrite unique_id; do
  [ -e "/etc/apache2/mods-enabled/$m.load" ] || {
    a2enmod -q "$m" >/dev/null
    changed=1
    echo "changed: enabled mod_$m"
  }
done
! svc_enabled nginx || {
  svc_disable_now nginx
  svc_gone nginx
  echo 'changed: disabled nginx (apache serves port 80)'
}
svc_enabled apache2 || { svc_enable apache2; echo 'changed: enabled apache2'; }
svc_active apache2 || { svc_must start apache2; echo 'changed: started apache2'; }
[ -z "$changed" ] || svc_must restart apache2
