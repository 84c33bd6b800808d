#!/bin/bash
# nginx serves port 80: the stock site off, Apache off, nginx enabled and running.
# Usage: front_nginx.sh INIT
set -eu
# flask-ops: include service.sh
[ ! -e /etc/nginx/sites-enabled/default ] || {
  rm -f /etc/nginx/sites-enabled/default
  echo 'changed: disabled the stock nginx site'
}
! svc_enabled apache2 || {
  svc_disable_now apache2
  svc_gone apache2
  echo 'changed: disabled apache2 (nginx serves port 80)'
}
svc_enabled nginx || { svc_enable nginx; echo 'changed: enabled nginx'; }
svc_active nginx || { svc_must start nginx; echo 'changed: started nginx'; }
