<?xml version="1.0" encoding="UTF-8"?>
<!-- Shows an RSS 2.0 or Atom 1.0 feed of feedsvc, opened in a browser, as a page that says how to subscribe. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:atom="http://www.w3.org/2005/Atom"
    exclude-result-prefixes="atom">
  <xsl:output method="html" encoding="UTF-8" indent="yes" doctype-system="about:legacy-compat"/>

  <xsl:variable name="title" select="/rss/channel/title | /atom:feed/atom:title"/>
  <xsl:variable name="self" select="(/rss/channel/atom:link[@rel='self'] | /atom:feed/atom:link[@rel='self'])[1]/@href"/>
  <xsl:variable name="page" select="/rss/channel/link | /atom:feed/atom:link[@rel='alternate']/@href"/>
  <xsl:variable name="next" select="(/rss/channel/atom:link[@rel='next'] | /atom:feed/atom:link[@rel='next'])[1]/@href"/>

  <xsl:template match="/">
    <html lang="en">
      <head>
        <meta charset="utf-8"/>
        <meta name="viewport" content="width=device-width, initial-scale=1"/>
        <title><xsl:value-of select="$title"/> (feed)</title>
        <style>
          :root { color-scheme: light dark; --fg: #1b1b1b; --bg: #fff; --muted: #555; --link: #0645ad; --box: #eef3fb; }
          @media (prefers-color-scheme: dark) { :root { --fg: #eee; --bg: #121212; --muted: #bbb; --link: #8ab4f8; --box: #1e2633; } }
          body { font: 1rem/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg); max-width: 46rem; margin: 0 auto; padding: 1rem; }
          a { color: var(--link); }
          .about { background: var(--box); padding: .75rem 1rem; border-radius: 6px; }
          code { word-break: break-all; }
          .muted { color: var(--muted); font-size: .9rem; }
          ul { list-style: none; padding: 0; } li { margin: 0 0 1rem; }
        </style>
      </head>
      <body>
        <section class="about">
          <p><strong>This is a web feed.</strong> Subscribe by copying its address into your feed reader:</p>
          <p><code><xsl:value-of select="$self"/></code></p>
          <p class="muted">New to feeds? A feed reader (many are free, on the web, phones and desktops) shows
          new releases as they are published, without visiting each site. <a href="{$page}">See these releases as a web page</a>.</p>
        </section>
        <h1><xsl:value-of select="$title"/></h1>
        <ul>
          <xsl:apply-templates select="/rss/channel/item | /atom:feed/atom:entry"/>
        </ul>
        <xsl:if test="$next">
          <p><a href="{$next}">Older releases</a></p>
        </xsl:if>
      </body>
    </html>
  </xsl:template>

  <xsl:template match="item">
    <li>
      <a href="{link}"><xsl:value-of select="title"/></a>
      <div class="muted"><xsl:value-of select="pubDate"/></div>
      <div><xsl:value-of select="description"/></div>
    </li>
  </xsl:template>

  <xsl:template match="atom:entry">
    <li>
      <a href="{atom:link[@rel='alternate']/@href}"><xsl:value-of select="atom:title"/></a>
      <div class="muted"><xsl:value-of select="substring(atom:published, 1, 10)"/></div>
      <div><xsl:value-of select="atom:summary"/></div>
    </li>
  </xsl:template>
</xsl:stylesheet>
