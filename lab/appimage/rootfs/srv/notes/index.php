<?php
// Notes: a small PHP application in the spirit of the ones tenants install. An install
// step (the first visit) writes its settings and admin account under /data; a login with
// a session cookie; forms with a CSRF token; notes handed to a background worker (another
// service in the same container) through files under /data.
declare(strict_types=1);

const DATA = '/data/notes';
const CONFIG = DATA . '/config.json';

function h(string $text): string
{
    return htmlspecialchars($text, ENT_QUOTES | ENT_HTML5, 'UTF-8');
}

function page(string $title, string $body, int $status = 200): void
{
    http_response_code($status);
    header('Content-Type: text/html; charset=utf-8');
    $version = trim((string) @file_get_contents('/etc/app/version'));
    echo "<!doctype html>\n<html><head><title>" . h($title) . "</title></head><body>\n";
    echo '<h1>' . h($title) . "</h1>\n" . $body . "\n";
    echo '<footer>notes ' . h($version) . ', uid ' . posix_getuid() . "</footer>\n";
    echo "</body></html>\n";
    exit;
}

function token(): string
{
    if (empty($_SESSION['token'])) {
        $_SESSION['token'] = bin2hex(random_bytes(16));
    }
    return $_SESSION['token'];
}

function token_field(): string
{
    return '<input type="hidden" name="token" value="' . h(token()) . '">';
}

function check_token(): void
{
    if (!hash_equals(token(), (string) ($_POST['token'] ?? ''))) {
        page('Expired form', '<p>The form has expired: load the page again.</p>', 400);
    }
}

function redirect(string $to): void
{
    header('Location: ' . $to, true, 303);
    exit;
}

session_name('notes');
session_set_cookie_params(['httponly' => true, 'samesite' => 'Lax', 'secure' => true]);
session_start();
$post = $_SERVER['REQUEST_METHOD'] === 'POST';
$action = (string) ($_POST['action'] ?? '');

if (!is_file(CONFIG)) {
    if ($post && $action === 'install') {
        check_token();
        $title = trim((string) ($_POST['title'] ?? ''));
        $user = trim((string) ($_POST['user'] ?? ''));
        $password = (string) ($_POST['password'] ?? '');
        if ($title === '' || $user === '' || strlen($password) < 8) {
            page('Install', '<p>Title, user and a password of 8 or more characters, please.</p>', 422);
        }
        foreach ([DATA, DATA . '/queue', DATA . '/done'] as $dir) {
            if (!is_dir($dir) && !mkdir($dir, 0775, true)) {
                page('Install', '<p>Cannot create ' . h($dir) . '.</p>', 500);
            }
        }
        $config = [
            'title' => $title,
            'user' => $user,
            'password' => password_hash($password, PASSWORD_DEFAULT),
            'installed' => gmdate('c'),
        ];
        $tmp = CONFIG . '.tmp';
        if (file_put_contents($tmp, json_encode($config, JSON_PRETTY_PRINT) . "\n") === false
            || !rename($tmp, CONFIG)) {
            page('Install', '<p>Cannot write the settings under ' . h(DATA) . '.</p>', 500);
        }
        redirect('/');
    }
    page('Install', '<form method="post"><input type="hidden" name="action" value="install">'
        . token_field()
        . '<label>Title <input name="title"></label> <label>Admin user <input name="user"></label> '
        . '<label>Password <input type="password" name="password"></label> '
        . '<button>Install</button></form>');
}

$config = json_decode((string) file_get_contents(CONFIG), true);

if ($post && $action === 'login') {
    check_token();
    $ok = hash_equals($config['user'], (string) ($_POST['user'] ?? ''))
        && password_verify((string) ($_POST['password'] ?? ''), $config['password']);
    if (!$ok) {
        page('Log in', '<p>Wrong user or password.</p>', 403);
    }
    session_regenerate_id(true);
    $_SESSION['user'] = $config['user'];
    redirect('/');
}

if (empty($_SESSION['user'])) {
    page($config['title'] . ': log in', '<form method="post"><input type="hidden" name="action" value="login">'
        . token_field()
        . '<label>User <input name="user"></label> <label>Password <input type="password" name="password"></label> '
        . '<button>Log in</button></form>', 401);
}

if ($post && $action === 'note') {
    check_token();
    $text = trim((string) ($_POST['text'] ?? ''));
    if ($text === '' || strlen($text) > 2000) {
        page($config['title'], '<p>A note has 1 to 2000 characters.</p>', 422);
    }
    $name = gmdate('Ymd\THis') . '-' . bin2hex(random_bytes(4)) . '.txt';
    if (file_put_contents(DATA . '/queue/.' . $name, $text . "\n") === false
        || !rename(DATA . '/queue/.' . $name, DATA . '/queue/' . $name)) {
        page($config['title'], '<p>Cannot queue the note.</p>', 500);
    }
    redirect('/');
}

$done = glob(DATA . '/done/*.txt') ?: [];
sort($done);
$queued = count(glob(DATA . '/queue/*.txt') ?: []);
$items = '';
foreach ($done as $file) {
    $items .= '<li>' . h(trim((string) file_get_contents($file))) . "</li>\n";
}
page($config['title'], '<p>Logged in as ' . h($_SESSION['user']) . '. Queued: ' . $queued . ".</p>\n"
    . '<form method="post"><input type="hidden" name="action" value="note">' . token_field()
    . '<label>Note <input name="text"></label> <button>Add</button></form>'
    . "\n<ul>\n" . $items . '</ul>');
