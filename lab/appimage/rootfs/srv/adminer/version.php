<?php
// The image's version (/etc/app/version): the tests see which tag a container runs.
header('Content-Type: text/plain');
readfile('/etc/app/version');
