<?php
// Adminer as Debian's package sets it up (/etc/adminer/conf.php: the compiled Adminer,
// with the plugin that keeps it from asking adminer.org for a newer version).
// PHP keeps its sessions in /var/lib/php/sessions, which the pod file makes an in-memory
// volume: the root file system is read-only.
require '/etc/adminer/conf.php';
