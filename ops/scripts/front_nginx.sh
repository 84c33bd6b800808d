#!/bin/bash
# nginx serves port 80: the stock site off, Apache off, nginx enabled and running.
set -eu
[ ! -e /etc/nginx/sites-enabled/default ] || {
  rm -f /etc/nginx/sites-enabled/default
  echo 'changed: disabled the stock nginx site'
}
! systemctl is-enabled --quiet apache2 2>/dev/null || {
  systemctl disable --now --quiet apache2
  echo 'changed: disabled apache2 (nginx serves port 80)'
}
systemctl is-enabled --quiet nginx || { systemctl enable --quiet nginx; echo 'changed: enabled nginx'; }
systemctl is-active --quiet nginx || { systemctl start nginx; echo 'changed: started nginx'; }
